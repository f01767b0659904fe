"""SpineMeasure: spine measurements, reader worksheets and agreement statistics in 3D Slicer.

Thin Slicer layer over SpineMeasureLib (pure core) and its scene logic.
"""

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class SpineMeasure(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Spine Measure"
        self.parent.categories = ["Spine"]
        self.parent.dependencies = []
        self.parent.contributors = ["SpinePlanner developers"]
        self.parent.helpText = (
            "Measures disc and foraminal heights, psoas area, facet angles, canal and lateral recess dimensions, "
            "herniation ratio and MSU class, and compares readers with Bland-Altman and ICC."
        )
        self.parent.acknowledgementText = (
            "Measurement definitions follow the LVP paper, Steurer et al. 2011 and Mysliwiec et al. 2010."
        )


class SpineMeasureWidget(ScriptedLoadableModuleWidget):
    def __init__(self, parent=None, logic=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = logic

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineMeasure.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.logic or SpineMeasureLogic()


class SpineMeasureLogic(ScriptedLoadableModuleLogic):
    pass


class SpineMeasureTest(ScriptedLoadableModuleTest):
    def runTest(self):
        self.assertIsNotNone(SpineMeasureLogic())

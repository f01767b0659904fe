"""SpineLocalizer: automatic lumbar MRI scan planning in 3D Slicer.

Thin Slicer layer: module metadata, the parameter node, and a widget whose buttons each call one logic method.
All computation lives in SpineLocalizerLib (pure core, tested with pytest); scene handling in
SpineLocalizerLib.scene (tested headless against slicer-core).
"""

import tempfile
from typing import Annotated

import slicer
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class SpineLocalizer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Spine Localizer"
        self.parent.categories = ["Spine"]
        self.parent.dependencies = []
        self.parent.contributors = ["SpinePlanner developers"]
        self.parent.helpText = (
            "Plans lumbar spine MRI from localizer images: one axial slice group per disc, sagittal and coronal "
            "slabs and saturation bands, as editable markups."
        )
        self.parent.acknowledgementText = (
            "Reproduces the planning steps of Lumbar VNet Pro (see the extension README for the citation)."
        )


@parameterNodeWrapper
class SpineLocalizerParameterNode:
    phantomSeed: Annotated[int, WithinRange(0, 1_000_000)] = 7


class SpineLocalizerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None, logic=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = logic
        self._parameterNode = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineLocalizer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.logic or SpineLocalizerLogic()
        self.ui.loadPhantomButton.connect("clicked(bool)", self.onLoadPhantom)
        self._parameterNode = self.logic.getParameterNode()
        self._parameterNode.connectGui(self.ui)

    def onLoadPhantom(self):
        with slicer.util.tryWithErrorDisplay("Could not create the sample phantom.", waitCursor=True):
            self.logic.loadPhantom(self._parameterNode.phantomSeed)


class SpineLocalizerLogic(ScriptedLoadableModuleLogic):
    def getParameterNode(self):
        return SpineLocalizerParameterNode(super().getParameterNode())

    def loadPhantom(self, seed: int) -> None:
        """Generate a phantom case and load its localizer and label maps into the scene."""
        from SpineLocalizerLib.phantom.generate import generate_case
        from SpineLocalizerLib.phantom.params import sample_params

        folder = tempfile.mkdtemp(prefix=f"SpinePhantom{seed}-")
        truth = generate_case(sample_params(seed), folder, highres=False, stacks=False, overview=False)
        slicer.util.loadVolume(f"{folder}/{truth['files']['localizer']}")
        slicer.util.loadLabelVolume(f"{folder}/{truth['files']['disc_labels']}")


class SpineLocalizerTest(ScriptedLoadableModuleTest):
    def runTest(self):
        slicer.mrmlScene.Clear()
        SpineLocalizerLogic().loadPhantom(3)
        self.assertGreaterEqual(len(slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")), 2)

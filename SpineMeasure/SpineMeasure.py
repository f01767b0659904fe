"""SpineMeasure: spine measurements, reader worksheets and agreement statistics in 3D Slicer.

Thin Slicer layer over SpineMeasureLib (pure core) and its scene logic (scene_worksheet, tested headless).
"""

from typing import Optional

import slicer
from slicer.parameterNodeWrapper import parameterNodeWrapper
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
            "herniation ratio and MSU class automatically from the images (structure network) or a label map "
            "(ours, SPINEPS, TotalSpineSeg, TotalSegmentator, VIBESegmentator), or from a reader's worksheet, and "
            "compares readers with Bland-Altman and ICC."
        )
        self.parent.acknowledgementText = (
            "Definitions: LVP paper, Steurer et al. 2011, Mysliwiec et al. 2010 (see docs/measurements.md)."
        )


@parameterNodeWrapper
class SpineMeasureParameterNode:
    imageVolume: Optional[slicer.vtkMRMLScalarVolumeNode]  # noqa: UP045 - parameterNodeWrapper needs Optional
    labelVolume: Optional[slicer.vtkMRMLLabelMapVolumeNode]  # noqa: UP045
    reader: str = "R1"
    level: str = "L4-L5"


class SpineMeasureWidget(ScriptedLoadableModuleWidget):
    def __init__(self, parent=None, logic=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        self.logic = logic
        self._parameterNode = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineMeasure.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = self.logic or SpineMeasureLogic()
        self._parameterNode = self.logic.getParameterNode()
        self._parameterNode.connectGui(self.ui)
        self.ui.measureButton.connect("clicked(bool)", self.onMeasure)
        self.ui.worksheetButton.connect("clicked(bool)", self.onWorksheet)
        self.ui.readWorksheetButton.connect("clicked(bool)", self.onReadWorksheet)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.compareButton.connect("clicked(bool)", self.onCompare)

    def onMeasure(self):
        with slicer.util.tryWithErrorDisplay("Automatic measurement failed.", waitCursor=True):
            self.ui.resultLabel.text = self.logic.measureAutomatically(
                self._parameterNode.imageVolume, self._parameterNode.labelVolume, self._parameterNode.level
            )

    def onWorksheet(self):
        with slicer.util.tryWithErrorDisplay("Could not create the worksheet."):
            self.logic.createWorksheet(self._parameterNode.level, self._parameterNode.reader)

    def onReadWorksheet(self):
        with slicer.util.tryWithErrorDisplay("Could not read the worksheet."):
            self.ui.resultLabel.text = self.logic.readWorksheet(self._parameterNode.reader)

    def onExport(self):
        with slicer.util.tryWithErrorDisplay("Could not export."):
            self.logic.exportCsv(self.ui.exportPathEdit.currentPath)

    def onCompare(self):
        with slicer.util.tryWithErrorDisplay("Could not compare the two files.", waitCursor=True):
            self.ui.resultLabel.text = self.logic.compare(
                self.ui.firstCsvEdit.currentPath, self.ui.secondCsvEdit.currentPath
            )


class SpineMeasureLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.rows = []

    def getParameterNode(self):
        return SpineMeasureParameterNode(super().getParameterNode())

    def _table(self, rows, name):
        from SpineMeasureLib.scene.results import add_results

        return add_results(slicer.mrmlScene, rows, name)

    def measureAutomatically(self, imageVolume, labelVolume=None, level: str = "") -> str:
        """From the label map when one is selected, else from the image by the structure network (its label map
        "Structures (network)" is added for checking and correcting), in the scene's plan planes if loaded."""
        from SpineMeasureLib.scene.auto_measure import measure_in_scene

        if labelVolume is None:
            # The structure network needs what the AI planning needs: PyTorch and safetensors, offered on first use.
            from SpineLocalizer import SpineLocalizerLogic

            SpineLocalizerLogic().ensureTorch()
            SpineLocalizerLogic().ensurePackages()
        out = measure_in_scene(
            slicer.mrmlScene, image_node=imageVolume, label_node=labelVolume, level=level if "-" in level else None
        )
        self.rows += out["rows"]
        ok = sum(r.status == "ok" for r in out["rows"])
        return f"{ok} measurements, {len(out['rows']) - ok} not measurable (see the table's reason column)"

    def createWorksheet(self, level: str, reader: str) -> None:
        from SpineMeasureLib.scene.worksheet import create_worksheet

        create_worksheet(slicer.mrmlScene, level, reader)

    def readWorksheet(self, reader: str) -> str:
        from SpineMeasureLib.landmark_mode import measure_landmarks
        from SpineMeasureLib.scene.worksheet import read_worksheet

        rows = measure_landmarks(read_worksheet(slicer.mrmlScene, reader))
        self.rows += rows
        self._table(rows, f"Measurements ({reader})")
        return f"{sum(r.status == 'ok' for r in rows)} measurements by {reader}"

    def exportCsv(self, path: str) -> None:
        from pathlib import Path

        from SpineMeasureLib.results import write_results

        if not path:
            raise ValueError("Choose a folder to write measurements.csv and measurements.json into.")
        write_results(self.rows, Path(path))

    def compare(self, first: str, second: str) -> str:
        """Bland-Altman charts and an agreement table in the scene (no matplotlib inside Slicer); the first
        chart is shown in the plot layout, the summary table in the table view."""
        from pathlib import Path

        from SpineMeasureLib.results import read_csv
        from SpineMeasureLib.scene.agreement_plots import add_agreement

        a, b = read_csv(Path(first)), read_csv(Path(second))
        # Each CSV is measurements.csv in its reader's folder: the folder names the reader.
        label_a, label_b = Path(first).parent.name or "A", Path(second).parent.name or "B"
        if label_a == label_b:
            label_a, label_b = f"{label_a} (1)", f"{label_b} (2)"
        out = add_agreement(slicer.mrmlScene, a, b, label_a, label_b)
        slicer.modules.plots.logic().ShowChartInLayout(next(iter(out["charts"].values())))
        selection = slicer.app.applicationLogic().GetSelectionNode()
        selection.SetActiveTableID(out["summary"].GetID())
        slicer.app.applicationLogic().PropagateTableSelection()
        return f"{len(out['charts'])} measurements compared ({label_b} - {label_a}); charts and table in the scene"


class SpineMeasureTest(ScriptedLoadableModuleTest):
    """Inside Slicer: a reader's worksheet, and measuring a phantom from its label map (the same logic is tested
    on slicer-core in Testing/)."""

    def runTest(self):
        self.test_worksheet()
        self.test_measuring_from_a_label_map()

    def test_worksheet(self):
        slicer.mrmlScene.Clear()
        logic = SpineMeasureLogic()
        logic.createWorksheet("L4-L5", "R1")
        self.assertIsNotNone(slicer.mrmlScene.GetFirstNodeByName("L4-L5 points (R1)"))

    def test_measuring_from_a_label_map(self):
        from SpineLocalizer import SpineLocalizerLogic

        slicer.mrmlScene.Clear()
        SpineLocalizerLogic().loadPhantom(3)
        logic = SpineMeasureLogic()
        message = logic.measureAutomatically(
            slicer.util.getNode("Phantom diagnostic volume"), slicer.util.getNode("Phantom diagnostic labels")
        )
        measured = [r for r in logic.rows if r.status == "ok"]
        self.assertGreater(len(measured), 20, message)
        self.assertTrue(any(r.measurement == "disc_height_mm" for r in measured), message)

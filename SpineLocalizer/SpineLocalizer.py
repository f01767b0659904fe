"""SpineLocalizer: automatic lumbar MRI scan planning in 3D Slicer.

Thin Slicer layer: module metadata, the parameter node, and a widget whose buttons each call one logic method.
Computation lives in SpineLocalizerLib (pure core, pytest); scene handling in SpineLocalizerLib.scene_* (tested
headless against slicer-core). Torch is imported only when the AI is first run.
"""

import tempfile
from typing import Annotated, Optional

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
            "slabs and saturation bands, as editable planes. Drag a plane: the table follows and the plane is kept "
            "as a manual edit when the AI runs again. Teaching: place a plane and press Check."
        )
        self.parent.acknowledgementText = "Reproduces the planning steps of Lumbar VNet Pro (see the extension README)."
        # The sample phantom in the Sample Data module, once the application is up (Slicer's module template).
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """The generated phantom localizer as a Sample Data entry: generated on the user's machine, nothing downloaded."""
    import os

    import SampleData
    from SpineLocalizerLib.sample_data import SAMPLE_SEED, sample_data_arguments

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        **sample_data_arguments(os.path.dirname(__file__)),
        customDownloader=lambda source: SpineLocalizerLogic().loadPhantom(SAMPLE_SEED),
    )


@parameterNodeWrapper
class SpineLocalizerParameterNode:
    inputVolume: slicer.vtkMRMLScalarVolumeNode
    coronalVolume: Optional[slicer.vtkMRMLScalarVolumeNode]  # noqa: UP045 - parameterNodeWrapper needs Optional
    highResVolume: Optional[slicer.vtkMRMLScalarVolumeNode]  # noqa: UP045
    lumbarCount: Annotated[int, WithinRange(0, 6)] = 0  # 0: detect
    overwriteManual: bool = False
    traineeName: str = "trainee"
    teachingLevel: str = "L4-L5"
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
        self._parameterNode = self.logic.getParameterNode()
        self._parameterNode.connectGui(self.ui)
        self.ui.runButton.connect("clicked(bool)", self.onRun)
        # A plane picked in the list: the three slice views go to it (the button does the same on demand).
        self.ui.planeSelector.connect("nodeActivated(vtkMRMLNode*)", lambda node: self.onShowSlices())
        from SpineLocalizerLib.scene.layout import legend_html

        self.ui.legendLabel.text = legend_html()
        self.ui.resetPlaneButton.connect("clicked(bool)", self.onResetPlane)
        self.ui.showSlicesButton.connect("clicked(bool)", self.onShowSlices)
        self.ui.generateAxialButton.connect("clicked(bool)", self.onGenerateAxial)
        self.ui.newTraineePlaneButton.connect("clicked(bool)", self.onNewTraineePlane)
        self.ui.checkButton.connect("clicked(bool)", self.onCheck)
        self.ui.exportAttemptsButton.connect("clicked(bool)", self.onExportAttempts)
        self.ui.loadPhantomButton.connect("clicked(bool)", self.onLoadPhantom)
        # A closed scene takes its plan nodes with it: the plan logic starts afresh on the next run.
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneClosed)
        # A scene or .mrb opened with a plan in it: its planes and bands are live again (edits tracked).
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneImported)
        self.logic.planLogic().adopt_scene()  # the module opened on a scene that already holds a plan

    def onSceneClosed(self, caller=None, event=None):
        self.logic.forgetPlan()

    def onSceneImported(self, caller=None, event=None):
        self.logic.planLogic().adopt_scene()

    def cleanup(self):
        self.removeObservers()
        if self.logic is not None:
            self.logic.forgetPlan()

    def onRun(self):
        from SpineLocalizerLib.progress import Cancelled

        dialog = slicer.util.createProgressDialog(windowTitle="AI planning", labelText="Starting", maximum=100)

        def report(fraction, text):
            dialog.labelText, dialog.value = text, int(round(100 * fraction))
            slicer.app.processEvents()
            return not dialog.wasCanceled

        try:
            with slicer.util.tryWithErrorDisplay("Planning failed.", waitCursor=True):
                try:
                    message = self.logic.runAI(self._parameterNode, progress=report)
                except Cancelled:
                    message = "Cancelled: the scene was not changed."
                self.ui.statusLabel.text = message
        finally:
            dialog.close()

    def onResetPlane(self):
        with slicer.util.tryWithErrorDisplay("Could not reset the plane.", waitCursor=True):
            self.logic.resetPlane(self.ui.planeSelector.currentNode())

    def onShowSlices(self):
        with slicer.util.tryWithErrorDisplay("Could not show the plane in the slice views."):
            self.logic.showSlices(self.ui.planeSelector.currentNode())

    def onGenerateAxial(self):
        with slicer.util.tryWithErrorDisplay("Could not generate axial images.", waitCursor=True):
            self.logic.generateAxialImages(self._parameterNode.highResVolume)

    def onNewTraineePlane(self):
        with slicer.util.tryWithErrorDisplay("Could not create the trainee plane."):
            self.logic.newTraineePlane(self._parameterNode.traineeName)

    def onCheck(self):
        with slicer.util.tryWithErrorDisplay("Could not check the plane."):
            score = self.logic.checkTraineePlane(self._parameterNode, self.ui.referenceFileEdit.currentPath)
            self.ui.teachingResultLabel.text = (
                f"{'PASS' if score.passed else 'TRY AGAIN'}: {score.offset_angle_deg:.1f} deg, "
                f"{score.center_distance_mm:.1f} mm. {score.advice}"
            )

    def onExportAttempts(self):
        with slicer.util.tryWithErrorDisplay("Could not export the attempts."):
            path = self.logic.exportAttempts(self.ui.attemptsFileEdit.currentPath)
            self.ui.teachingResultLabel.text = f"Attempts written to {path}"

    def onLoadPhantom(self):
        with slicer.util.tryWithErrorDisplay("Could not create the sample phantom.", waitCursor=True):
            self.logic.loadPhantom(self._parameterNode.phantomSeed)


class SpineLocalizerLogic(ScriptedLoadableModuleLogic):
    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._plan_logic = None
        self._teaching = None
        self.lastPlan = None

    def getParameterNode(self):
        return SpineLocalizerParameterNode(super().getParameterNode())

    def forgetPlan(self):
        """Drop the plan logic and its observers (scene closed, module closed)."""
        if self._plan_logic is not None:
            self._plan_logic.cleanup()
        self._plan_logic = None

    def planLogic(self):
        from SpineLocalizerLib.scene.plan import PlanSceneLogic

        if self._plan_logic is None or self._plan_logic.scene is not slicer.mrmlScene:
            self._plan_logic = PlanSceneLogic(slicer.mrmlScene)
        return self._plan_logic

    def ensureTorch(self):
        """PyTorch comes from Slicer's PyTorch extension; offer to install it on first use, never at import."""
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            return
        try:
            import PyTorchUtils
        except ImportError as err:
            raise RuntimeError(
                "SpineLocalizer needs PyTorch: install the 'PyTorch' extension from the Extensions Manager and restart Slicer."
            ) from err
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
            raise RuntimeError("PyTorch was not installed; the AI planning cannot run.")

    def ensurePackages(self):
        """safetensors (required) and ONNX Runtime (optional, faster) are pip-installed on first use, after
        asking (SpineLocalizerLib/dependencies.py)."""
        from SpineLocalizerLib import dependencies

        required = dependencies.missing(dependencies.REQUIRED)
        optional = dependencies.missing(dependencies.OPTIONAL)
        if not required and not optional:
            return
        if not slicer.util.confirmOkCancelDisplay(dependencies.missing_message(required, optional)):
            if required:
                raise RuntimeError(f"{', '.join(required)} not installed; the AI planning cannot run.")
            return
        slicer.util.pip_install(" ".join(required + optional))

    def runAI(self, p, progress=None) -> str:
        """Plan the selected localizer (scene/ai_run.py): `progress(fraction, text)` answering False cancels
        before the scene changes. Shows the scan-parameter table in a table layout."""
        if p.inputVolume is None:
            raise ValueError("Select the sagittal localizer volume first.")
        self.ensureTorch()
        self.ensurePackages()
        from SpineLocalizerLib.scene.ai_run import run_ai
        from SpineLocalizerLib.scene.layout import show_table_layout
        from SpineLocalizerLib.scene.volumes import volume_from_node

        images = [volume_from_node(p.inputVolume)] + ([volume_from_node(p.coronalVolume)] if p.coronalVolume else [])
        self.lastPlan, message = run_ai(
            slicer.mrmlScene,
            self.planLogic(),
            images,
            localizer_name=p.inputVolume.GetName(),
            lumbar_count=p.lumbarCount or None,
            overwrite_manual=p.overwriteManual,
            progress=progress,
        )
        show_table_layout(slicer.mrmlScene, self.planLogic().table())
        slicer.app.applicationLogic().PropagateTableSelection()
        return message

    def resetPlane(self, planeNode):
        if planeNode is None:
            raise ValueError("Select a plane.")
        self.planLogic().reset_to_ai(planeNode.GetName())

    def showSlices(self, planeNode):
        from SpineLocalizerLib.scene.volumes import point_views_at_plane

        if planeNode is None:
            raise ValueError("Select a plane.")
        views = {"axial": "Red", "sagittal": "Yellow", "coronal": "Green"}
        layout = slicer.app.layoutManager()
        point_views_at_plane({r: layout.sliceWidget(v).mrmlSliceNode() for r, v in views.items()}, planeNode)

    def generateAxialImages(self, highResVolume):
        from SpineLocalizerLib.scene.volumes import add_axial_images, volume_from_node

        if highResVolume is None:
            raise ValueError("Select the high-resolution volume to reslice.")
        add_axial_images(slicer.mrmlScene, self.planLogic(), volume_from_node(highResVolume))

    def newTraineePlane(self, trainee: str):
        from SpineLocalizerLib.scene.teaching import hide_plan_from_trainee, trainee_plane_name

        hide_plan_from_trainee(slicer.mrmlScene)  # the answer stays hidden until the plane is checked
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsPlaneNode", trainee_plane_name(trainee))
        slicer.modules.markups.logic().SetActiveList(node)
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        interaction.SetCurrentInteractionMode(interaction.Place)

    def checkTraineePlane(self, p, referencePath: str):
        from SpineLocalizerLib.scene.teaching import (
            TeachingSceneLogic,
            latest_trainee_plane,
            reference_plane,
            reveal_plan,
        )

        trainee = latest_trainee_plane(slicer.mrmlScene, p.traineeName)
        if trainee is None:
            raise ValueError("Place the trainee plane first ('New trainee plane').")
        reference, name = reference_plane(p.teachingLevel, self.lastPlan, referencePath)
        self._teaching = self._teaching or TeachingSceneLogic(slicer.mrmlScene)
        score = self._teaching.check(
            trainee, reference, trainee=p.traineeName, level=p.teachingLevel, reference_name=name
        )
        reveal_plan(slicer.mrmlScene)  # scored: now the trainee may compare with the answer
        return score

    def exportAttempts(self, path: str) -> str:
        from SpineLocalizerLib.scene.teaching import TeachingSceneLogic

        if not path:
            raise ValueError("Choose a CSV file name.")
        self._teaching = self._teaching or TeachingSceneLogic(slicer.mrmlScene)
        self._teaching.export_csv(path)
        return path

    def loadPhantom(self, seed: int) -> None:
        """Generate a phantom case and load its localizer and label maps into the scene."""
        from SpineLocalizerLib.phantom.generate import SAMPLE_VOLUMES, generate_case
        from SpineLocalizerLib.phantom.params import sample_params

        folder = tempfile.mkdtemp(prefix=f"SpinePhantom{seed}-")
        truth = generate_case(sample_params(seed), folder, highres=True, stacks=False, overview=False)
        # The diagnostic volume's full label map too: SpineMeasure measures every structure from it.
        for name, role, is_label in SAMPLE_VOLUMES:
            load = slicer.util.loadLabelVolume if is_label else slicer.util.loadVolume
            load(f"{folder}/{truth['files'][role]}", {"name": name})


class SpineLocalizerTest(ScriptedLoadableModuleTest):
    """Inside Slicer: the module's flows on a phantom (the same logic is tested on slicer-core in Testing/)."""

    def runTest(self):
        self.test_phantom_and_plan_from_labels()
        self.test_ai_planning_bands_and_an_edit()
        self.test_teaching()

    def setUp(self):
        slicer.mrmlScene.Clear()
        self.logic = SpineLocalizerLogic()
        self.logic.loadPhantom(3)

    def test_phantom_and_plan_from_labels(self):
        from SpineLocalizerLib.planning.plan import build_plan
        from SpineLocalizerLib.scene.volumes import volume_from_node

        self.setUp()
        plan, _ = build_plan(volume_from_node(slicer.util.getNode("Phantom localizer discs")))
        self.logic.planLogic().load_plan(plan)
        self.assertEqual(len(self.logic.planLogic().planes()), len(plan["discs"]) + 2)

    def _planned(self):
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            self.delayDisplay("PyTorch is not installed: AI planning flows skipped")
            return None
        self.setUp()
        p = self.logic.getParameterNode()
        p.inputVolume = slicer.util.getNode("Phantom localizer")
        from SpineLocalizerLib.progress import Cancelled

        n_nodes = slicer.mrmlScene.GetNumberOfNodes()
        with self.assertRaises(Cancelled):  # Cancel in the progress dialog: nothing added
            self.logic.runAI(p, progress=lambda fraction, text: False)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), n_nodes)
        message = self.logic.runAI(p)
        self.assertIn("discs", message)
        return p

    def test_ai_planning_bands_and_an_edit(self):
        import numpy as np
        from SpineLocalizerLib.scene import set_plane_lps
        from SpineLocalizerLib.scene.plan import node_center_lps

        p = self._planned()
        if p is None:
            return
        plan, planes = self.logic.lastPlan, self.logic.planLogic().planes()
        self.assertEqual(len(planes), len(plan["discs"]) + 2)
        band = plan["saturation_bands"][0]
        self.assertLess(np.linalg.norm(node_center_lps(slicer.util.getNode(band["name"])) - band["center_lps"]), 1.0)
        disc = plan["discs"][1]
        name = f"{disc['label']} axial"
        moved = np.asarray(disc["scan_center_lps"]) + [0.0, 0.0, 4.0]
        group = disc["slice_group"]
        set_plane_lps(planes[name], moved, disc["normal_lps"], group["x_axis_lps"], group["fov_mm"])
        rows = {r["Plane"]: r for r in self.logic.planLogic().table_rows()}
        self.assertEqual(rows[name]["Source"], "manual")
        self.assertIn(f"kept manual: {name}", self.logic.runAI(p))
        self.logic.resetPlane(planes[name])
        self.assertEqual({r["Plane"]: r for r in self.logic.planLogic().table_rows()}[name]["Source"], "ai")

    def test_teaching(self):
        import numpy as np
        from SpineLocalizerLib.scene import set_plane_lps
        from SpineLocalizerLib.scene.teaching import latest_trainee_plane

        p = self._planned()
        if p is None:
            return
        p.traineeName, p.teachingLevel = "novice", "L4-L5"
        self.logic.newTraineePlane("novice")
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        interaction.SetCurrentInteractionMode(interaction.ViewTransform)
        disc = next(d for d in self.logic.lastPlan["discs"] if d["label"] == "L4-L5")
        n, post = np.asarray(disc["normal_lps"]), np.asarray(disc["posterior_lps"])
        trainee = latest_trainee_plane(slicer.mrmlScene, "novice")
        set_plane_lps(trainee, np.asarray(disc["scan_center_lps"]) + 7.0 * n, n, np.cross(post, n), (200, 200))
        score = self.logic.checkTraineePlane(p, "")
        self.assertAlmostEqual(score.center_distance_mm, 7.0, delta=0.1)
        self.assertFalse(score.passed)

"""Offscreen 3D picture of a scene through Slicer's own displayable managers (slicer-core, EGL, no Qt)."""

from __future__ import annotations

import os
from pathlib import Path

THREE_D_MANAGERS = (
    "vtkMRMLCameraDisplayableManager",
    "vtkMRMLModelDisplayableManager",
    "vtkMRMLSegmentationsDisplayableManager3D",
    "vtkMRMLMarkupsDisplayableManager",
)


def render_3d(scene, png: str | Path, *, size: int = 900, azimuth: float = 70.0, elevation: float = 10.0) -> None:
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import slicer
    import vtk

    app_logic = slicer.vtkMRMLApplicationLogic()
    app_logic.SetMRMLScene(scene)
    markups = slicer.vtkSlicerMarkupsLogic()
    markups.SetMRMLScene(scene)
    markups.SetMRMLApplicationLogic(app_logic)
    app_logic.SetModuleLogic("Markups", markups)  # the markups manager builds its widgets through this logic
    # Headless, no module logic registers the labelmap -> surface conversion that 3D display needs.
    factory_rules = slicer.vtkSegmentationConverterFactory.GetInstance()
    factory_rules.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.IsA("vtkMRMLSegmentationNode"):
            node.CreateClosedSurfaceRepresentation()
    # The edit handles are for people at a screen; a still picture reads better without them.
    hidden = []
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        if node.IsA("vtkMRMLMarkupsDisplayNode") and node.GetHandlesInteractive():
            node.SetHandlesInteractive(False)
            hidden.append(node)
    view = scene.AddNewNodeByClass("vtkMRMLViewNode")
    view.SetLayoutName("1")
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.08, 0.08, 0.12)
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(size, size)
    window.AddRenderer(renderer)
    interactor = vtk.vtkRenderWindowInteractor()
    interactor.SetRenderWindow(window)
    factory = slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance()
    factory.SetMRMLApplicationLogic(app_logic)
    for name in THREE_D_MANAGERS:
        if not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    group = factory.InstantiateDisplayableManagers(renderer)
    group.SetMRMLDisplayableNode(view)
    renderer.ResetCamera()
    camera = renderer.GetActiveCamera()
    camera.Azimuth(azimuth)
    camera.Elevation(elevation)
    renderer.ResetCamera()
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(png))
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    scene.RemoveNode(view)
    for node in hidden:
        node.SetHandlesInteractive(True)

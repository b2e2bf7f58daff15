"""The viewer's pieces on small real inputs, each in seconds: the rotation handed to the real
splat-transform, gravity from a camera path, the GLB the mesh page embeds, the mesh renderer."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from onyx_tools.splat_ply import GaussianCloud, read_splat_ply, write_splat_ply
from onyx_viewer.camera_path import Camera, frame_times, gravity_up, smoothed_poses, viewer_rotation
from onyx_viewer.mesh_page import UNLIT, orbit, unlit_glb
from onyx_viewer.mesh_render import Mesh, mesh_renderer
from onyx_viewer.splat_page import euler_rotation, playcanvas_euler_degrees, splat_transform_angles


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def look(centre, forward, up=(0.0, -1.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """World->camera (R, t) of a camera at ``centre`` looking along ``forward`` with world ``up``."""
    z = np.asarray(forward, float) / np.linalg.norm(forward)
    x = np.cross(-np.asarray(up, float), z)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    return R, -R @ np.asarray(centre, float)


def test_euler_angles_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    for _ in range(50):
        rotation = random_rotation(rng)
        assert np.allclose(euler_rotation(*playcanvas_euler_degrees(rotation)), rotation, atol=1e-9)
    flip = np.diag([-1.0, -1.0, 1.0]) @ np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert np.allclose(euler_rotation(*playcanvas_euler_degrees(flip)), flip, atol=1e-9)  # gimbal lock


def test_splat_transform_turns_the_splat_as_the_angles_say(tmp_path):
    """The angles given to the real splat-transform's -r turn the file's Gaussian centres by exactly the rotation
    (splat-transform reads them in its viewer's frame, turned 180 degrees about z)."""
    import subprocess

    from onyx_viewer.node import splat_transform

    rng = np.random.default_rng(2)
    n = 64
    cloud = GaussianCloud(means=rng.normal(size=(n, 3)).astype(np.float32),
                          sh_dc=rng.normal(size=(n, 3)).astype(np.float32),
                          sh_rest=np.zeros((n, 0, 3), np.float32), opacities=np.zeros(n, np.float32),
                          scales=np.full((n, 3), -3.0, np.float32),
                          quats=np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (n, 1)))
    write_splat_ply(tmp_path / "in.ply", cloud)
    rotation = random_rotation(rng)
    angles = ",".join(f"{a:.9f}" for a in splat_transform_angles(rotation))
    subprocess.run([*splat_transform(), "-q", "-w", str(tmp_path / "in.ply"), "-r", angles, str(tmp_path / "out.ply")],
                   check=True, capture_output=True, timeout=120)
    turned = read_splat_ply(tmp_path / "out.ply")
    assert np.allclose(turned.means, cloud.means @ rotation.T, atol=1e-4)


def test_up_and_forward_come_from_the_camera_path():
    rng = np.random.default_rng(3)
    world_from_level = random_rotation(rng)  # the reconstruction's arbitrary frame
    K = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    cameras = []
    for i in range(12):
        heading = np.array([np.sin(0.1 * i), 0.05 * rng.normal(), np.cos(0.1 * i)])
        R, t = look([0.3 * i, 0.0, 0.1 * i], heading)  # level frame: y down, walking on y = 0
        # the same camera in the reconstruction's frame (x' = W x): R' = R W^T, and t' = t
        cameras.append(Camera(f"f{i}", 0.5 * i, R @ world_from_level.T, t, K, 100, 100))
    up = gravity_up(cameras)
    assert np.allclose(up, world_from_level @ [0.0, -1.0, 0.0], atol=0.01)
    view = viewer_rotation(cameras)
    assert np.allclose(view @ up, [0.0, 1.0, 0.0], atol=1e-9)
    forward = view @ cameras[0].R[2]  # the first camera looks along -Z in the viewer
    assert forward[2] < -0.95 and abs(forward[0]) < 1e-9


def test_smoothed_path_spans_the_capture_and_passes_near_it():
    K = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    cameras = []
    for i in range(9):
        R, t = look([0.2 * i, 0.0, 0.0], [0.0, 0.0, 1.0])
        cameras.append(Camera(f"f{i}", 0.25 * i, R, t, K, 100, 100))
    times = frame_times(cameras, fps=10)
    assert len(times) == 21 and times[0] == 0.0 and abs(times[-1] - 2.0) < 1e-9
    poses = smoothed_poses(cameras, times, sigma_s=0.25)
    centres = np.stack([-R.T @ t for R, t in poses])
    assert np.allclose(centres[:, 1:], 0.0, atol=1e-9)  # a straight walk stays straight
    assert np.all(np.diff(centres[:, 0]) > 0)           # and goes forward all the way
    exact = smoothed_poses(cameras, np.array([c.time_s for c in cameras]), sigma_s=0.0)
    assert all(np.allclose(R, c.R) and np.allclose(t, c.t) for (R, t), c in zip(exact, cameras))


def test_unlit_glb_is_a_valid_glb_trimesh_reads():
    import trimesh

    box = trimesh.creation.box()
    glb = unlit_glb(box.export(file_type="glb"))
    length, kind = struct.unpack_from("<II", glb, 12)
    document = json.loads(glb[20:20 + length])
    assert UNLIT in document["extensionsUsed"]
    assert all(UNLIT in material["extensions"] for material in document["materials"])
    assert struct.unpack_from("<I", glb, 8)[0] == len(glb) and length % 4 == 0
    import io

    loaded = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh")
    assert len(loaded.faces) == len(box.faces)


def test_orbit_points_from_the_target_to_the_camera():
    assert orbit([0, 0, 2], [0, 0, 0]) == f"{0:.6f}rad {np.pi / 2:.6f}rad {2:.6f}m"
    theta, phi, radius = (float(part[:-3] if part.endswith("rad") else part[:-1]) for part in
                          orbit([1, 1, 0], [0, 0, 0]).split())
    assert np.isclose(theta, np.pi / 2) and np.isclose(phi, np.pi / 4) and np.isclose(radius, np.sqrt(2))


def test_mesh_renderer_colours_pixels_from_vertex_colours():
    # a red and a green triangle side by side at z = 2, seen by a camera at the origin looking along +z
    vertices = np.array([[-1, -1, 2], [0, -1, 2], [-1, 1, 2], [0, -1, 2], [1, -1, 2], [0, 1, 2]], float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    colours = np.array([[255, 0, 0]] * 3 + [[0, 255, 0]] * 3, np.float32)
    render = mesh_renderer(Mesh(vertices, faces, colours, None, None))
    K = np.array([[20.0, 0, 20], [0, 20.0, 20], [0, 0, 1]])
    image = render(np.eye(4), K, 40, 40)
    assert image.shape == (40, 40, 3)
    assert tuple(image[20, 12]) == (255, 0, 0) and tuple(image[10, 21]) == (0, 255, 0)
    assert tuple(image[2, 2]) == (24, 24, 24)  # no surface: the background


@pytest.mark.parametrize("bad", ["nan", "empty"])
def test_bad_splats_are_refused_with_the_reason(tmp_path, bad):
    from onyx_tools.errors import ToolError
    from onyx_viewer.config import ViewerConfig
    from onyx_viewer.tool import splat_page

    n = 4
    means = np.zeros((n, 3), np.float32)
    means[1, 0] = np.nan
    cloud = GaussianCloud(means, np.zeros((n, 3), np.float32), np.zeros((n, 0, 3), np.float32),
                          np.zeros(n, np.float32), np.zeros((n, 3), np.float32), np.zeros((n, 4), np.float32))
    write_splat_ply(tmp_path / "splat.ply", cloud)
    if bad == "empty":  # the same header, no vertices
        text = (tmp_path / "splat.ply").read_bytes().split(b"end_header\n")[0] + b"end_header\n"
        (tmp_path / "splat.ply").write_bytes(text.replace(b"element vertex 4", b"element vertex 0"))
    with pytest.raises(ToolError, match="NaN" if bad == "nan" else "no Gaussians"):
        splat_page(tmp_path / "splat.ply", tmp_path, tmp_path / "work", np.eye(3), [], ViewerConfig(), None)


def test_smoothing_keeps_the_ends_of_a_steady_walk():
    """Odd reflection at the ends: a turning walk at constant speed starts and ends where it was captured."""
    K = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    cameras = []
    for i in range(13):
        heading = [np.sin(0.05 * i), 0.0, np.cos(0.05 * i)]
        R, t = look([0.3 * i, 0.0, 0.0], heading)
        cameras.append(Camera(f"f{i}", 0.25 * i, R, t, K, 100, 100))
    poses = smoothed_poses(cameras, np.array([0.0, 3.0]), sigma_s=0.5)
    for (R, t), camera in zip(poses, (cameras[0], cameras[-1])):
        assert np.linalg.norm(-R.T @ t - camera.centre) < 1e-6
        assert np.degrees(np.arccos(np.clip((np.trace(R @ camera.R.T) - 1) / 2, -1, 1))) < 0.01

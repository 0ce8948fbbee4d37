"""The streaming animator: same numbers as the direct library calls, whatever the batching."""

import threading

import numpy as np
import pytest
import torch

from animate_cli.errors import BadInputError
from animate_cli.motion import normalize_keypoints
from animate_cli.pipeline import (
    Animator,
    BackgroundWriter,
    MotionOptions,
    batched,
    choose_precision,
    has_native_bf16,
    image_to_tensor,
    prefetch,
    resolve_device,
    tensor_to_images,
)
from tests.conftest import perturbed_model


def random_frames(count, size=64, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return [np.roll(base, shift=2 * i, axis=1) for i in range(count)]


def direct(model, source, frames, relative, adapt):
    with torch.no_grad():
        source_t = image_to_tensor(source, torch.device("cpu"))
        kp_source = model.kp_detector(source_t)
        kp_driving = model.kp_detector(image_to_tensor(frames, torch.device("cpu")))
        kp_initial = model.kp_detector(image_to_tensor(frames[0], torch.device("cpu")))
        kp = normalize_keypoints(kp_source, kp_driving, kp_initial, relative=relative, adapt_movement_scale=adapt)
        return tensor_to_images(model.generator(source_t, kp_source, kp).prediction)


@pytest.mark.parametrize("relative, adapt", [(True, True), (True, False), (False, False)])
def test_animator_matches_the_library_calls(tiny_config, relative, adapt):
    model = perturbed_model(tiny_config)
    source, *frames = random_frames(8)
    expected = direct(model, source, frames, relative, adapt)
    animator = Animator(model, torch.device("cpu"))
    prepared = [animator.prepare_source(source)]
    for batch_size in (1, 3):
        out = list(animator.animate(prepared, enumerate(frames), None, MotionOptions(relative, adapt), batch_size))
        assert [tag for tag, _ in out] == list(range(7))
        ours = np.stack([results[0] for _, results in out])
        assert np.abs(ours.astype(int) - expected).max() <= 1  # batching changes float rounding only


def test_several_sources_share_one_pass(tiny_config):
    animator = Animator(perturbed_model(tiny_config), torch.device("cpu"))
    first, second, *frames = random_frames(6)
    prepared = [animator.prepare_source(first), animator.prepare_source(second)]
    out = list(animator.animate(prepared, enumerate(frames), None, MotionOptions(), 2))
    assert all(len(results) == 2 for _, results in out)
    alone = list(animator.animate(prepared[1:], enumerate(frames), None, MotionOptions(), 2))
    assert all(np.array_equal(a[1][1], b[1][0]) for a, b in zip(out, alone))


def test_reference_frame_maps_onto_the_source_pose(tiny_config):
    """In relative mode the reference frame gives the source keypoints, so its result is the source re-rendered."""
    model = perturbed_model(tiny_config)
    animator = Animator(model, torch.device("cpu"))
    source, *frames = random_frames(5)
    prepared = animator.prepare_source(source)
    out = dict(animator.animate([prepared], enumerate(frames), frames[3], MotionOptions(True, True), 4))
    still = animator.render(prepared, prepared.kp)[0]
    assert np.abs(out[3][0].astype(int) - still).max() <= 1


def test_bf16_on_cpu_stays_close_to_fp32(tiny_config):
    model = perturbed_model(tiny_config)
    source, *frames = random_frames(4)
    outputs = {}
    for precision in ("fp32", "bf16"):
        animator = Animator(model, torch.device("cpu"), precision)
        prepared = [animator.prepare_source(source)]
        outputs[precision] = np.stack([r[0] for _, r in animator.animate(prepared, enumerate(frames), None, MotionOptions())])
    assert np.abs(outputs["fp32"].astype(float) - outputs["bf16"]).mean() <= 2.0  # 2/255 on [0, 1]


def test_device_and_precision_refusals(tiny_config):
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(BadInputError, match="unknown device"):
        resolve_device("tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(BadInputError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(BadInputError, match="fp16 needs a GPU"):
        Animator(perturbed_model(tiny_config), torch.device("cpu"), "fp16")


def test_auto_precision_is_bf16_only_where_the_hardware_has_it(tiny_config):
    cpu = torch.device("cpu")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert has_native_bf16(cpu) == native
    assert choose_precision("auto", cpu) == ("bf16" if native else "fp32")
    assert choose_precision("auto", torch.device("meta")) == "fp32"  # neither CPU nor CUDA: no bf16 assumed
    assert [choose_precision(name, cpu) for name in ("fp32", "bf16")] == ["fp32", "bf16"]
    assert Animator(perturbed_model(tiny_config), cpu, "auto").precision == choose_precision("auto", cpu)
    with pytest.raises(BadInputError, match="unknown precision 'fp8'"):
        choose_precision("fp8", cpu)


def test_batched_and_prefetch_keep_order_and_errors():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(prefetch(iter(range(100)), depth=4)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("decode failed")

    with pytest.raises(ValueError, match="decode failed"):
        list(prefetch(failing()))


def test_prefetch_stops_its_thread_when_the_consumer_stops():
    before = threading.active_count()
    stream = prefetch(iter(range(10_000)), depth=2)
    next(stream)
    stream.close()
    assert threading.active_count() == before


def test_background_writer_writes_in_order_and_reports_errors():
    written = []
    writer = BackgroundWriter(written.append)
    for i in range(50):
        writer.put(i)
    writer.close()
    assert written == list(range(50))

    def broken(item):
        raise OSError("disk full")

    writer = BackgroundWriter(broken)
    writer.put(1)
    with pytest.raises(OSError, match="disk full"):
        writer.close()


def test_static_shape_padding_of_the_last_batch_changes_nothing(tiny_config):
    """With --compile every batch is padded to the same size; the padded frames must not leak into the output."""
    model = perturbed_model(tiny_config)
    source, *frames = random_frames(8)
    eager = Animator(model, torch.device("cpu"))
    padded = Animator(model, torch.device("cpu"))
    padded.compiled = True  # the padding path alone; torch.compile itself is exercised by bench/
    outputs = []
    for animator in (eager, padded):
        prepared = [animator.prepare_source(source)]
        outputs.append(list(animator.animate(prepared, enumerate(frames), None, MotionOptions(), 4)))
    assert [tag for tag, _ in outputs[1]] == list(range(7))
    for (_, a), (_, b) in zip(*outputs):
        assert np.array_equal(a[0], b[0])

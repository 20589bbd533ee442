"""Synthetic face-analysis files: InsightFace's ONNX models and InstantID's IP-Adapter.

Part of ``synth.py`` (it imports this module; both run inside ComfyUI's Python and import
nothing of ``generator``). No real weights, and for the ONNX files not the real networks either:

* **InsightFace ONNX** (``antelopev2``: SCRFD detector, 68-point 3D and 106-point 2D landmarks,
  gender/age, ArcFace recognition). Each file is a small graph with the *interface* InsightFace
  reads: the input name and shape, and the number, order and shapes of the outputs by which
  ``insightface.model_zoo`` routes a file to its task (9 outputs: an SCRFD detector with key
  points at strides 8/16/32 and two anchors; a 192² input: landmarks, told apart by 3309 or 212
  outputs; 96²: gender/age; a square input ≥ 112: recognition). The real files' layers are not
  rebuilt. The detector is deterministic and content-dependent: it reports a face (a 256-pixel
  box at detection size, five key points inside it) on every 32-pixel patch whose pixels vary
  (standard deviation above ~2 grey levels), none on a flat image or the zero padding. So a
  photo, or a small image scaled up, has faces; a one-colour image has none, as with the real
  detector ("No face detected"), and an inverted image has the same faces. Landmarks,
  attributes and the embedding come from pooled pixels through fixed random matrices: a
  different face gives a different embedding.
* **inswapper_128** (ReActor's face swapper): its interface (inputs ``target``, ``source``,
  the ``emap`` matrix as the last initializer), not its network: the output is the target face
  toned by the donor's embedding, so a swap changes the picture and depends on the donor.
* **InstantID's ``ip-adapter.bin``**: the pickled ``{"image_proj": …, "ip_adapter": …}`` dict of
  the published file, float32 (1.69 GB): a Resampler (1280 wide, 4 layers, 20 heads, 16
  queries, 512-d face embedding in, 2048-d tokens out) and a key/value projection pair for each
  of SDXL's 70 cross-attentions, numbered ``1, 3, …, 139`` in the order ComfyUI_InstantID
  patches them (input blocks, output blocks, middle), widths from ComfyUI's SDXL config.
"""

from __future__ import annotations

import os

# arch -> what InsightFace's router makes of the file (its ``taskname``)
ONNX_TASKS = {
    "insightface-scrfd": "detection",
    "insightface-landmark-3d68": "landmark_3d_68",
    "insightface-landmark-2d106": "landmark_2d_106",
    "insightface-genderage": "genderage",
    "insightface-arcface": "recognition",
}
# LivePortrait's landmark runner: input "input" (224² RGB in 0..1), 203 points (x, y in 0..1)
# read from the third output
LANDMARK_POINTS = 203
# inswapper_128: inputs "target" (the aligned 128² face, RGB in 0..1) and "source" (the donor's
# 512-d embedding, already multiplied by emap), output the swapped 128² face in 0..1; emap, the
# 512×512 matrix applied to the embedding first, is the graph's last initializer
SWAP_SIDE, EMBEDDING = 128, 512
ONNX_ARCHES = (*ONNX_TASKS, "liveportrait-landmark", "inswapper-128")

OPSET = 13
IR_VERSION = 8  # what onnxruntime releases since 1.10 read

# SCRFD: strides, anchors per position, the box (distance from the anchor to each side, in
# strides) and the five key points (offsets in strides: eyes, nose, mouth corners)
STRIDES = (8, 16, 32)
ANCHORS = 2
FACE_STRIDE = 32  # the only stride that reports faces
BOX = 4.0
KEY_POINTS = ((-1.2, -1.0), (1.2, -1.0), (0.0, 0.2), (-0.9, 1.6), (0.9, 1.6))
# score = sigmoid(GAIN * variance - OFFSET): 0.5 at a pixel standard deviation of ~1.8 grey
# levels in InsightFace's normalisation ((pixel - 127.5) / 128)
GAIN, OFFSET = 20000.0, 4.0


def write_onnx(arch: str, path: str) -> None:
    import onnx

    graph = {
        "insightface-scrfd": _scrfd,
        "insightface-landmark-3d68": lambda: _pooled_head("landmarks", 192, 3309, seed=68),
        "insightface-landmark-2d106": lambda: _pooled_head("landmarks", 192, 212, seed=106),
        "insightface-genderage": lambda: _pooled_head("genderage", 96, 3, seed=3),
        "insightface-arcface": _arcface,
        "liveportrait-landmark": _liveportrait_landmark,
        "inswapper-128": _inswapper,
    }[arch]()
    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        producer_name="ryla-gen smoke",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    onnx.save(model, path)


def _init(name, array):
    import numpy as np
    import onnx

    return onnx.numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _scrfd():
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])
    nodes, inits, outputs = [], [], {"score": [], "bbox": [], "kps": []}
    widths = {"score": 1, "bbox": 4, "kps": 10}
    for s in STRIDES:
        pooled = f"pool{s}"
        nodes.append(
            helper.make_node(
                "AveragePool", ["input.1"], [pooled], kernel_shape=[s, s], strides=[s, s]
            )
        )
        if s == FACE_STRIDE:  # patch variance, summed over channels, to a face score
            nodes += [
                helper.make_node("Mul", ["input.1", "input.1"], ["square"]),
                helper.make_node(
                    "AveragePool", ["square"], ["pool_sq"], kernel_shape=[s, s], strides=[s, s]
                ),
                helper.make_node("Mul", [pooled, pooled], ["pool_mean_sq"]),
                helper.make_node("Sub", ["pool_sq", "pool_mean_sq"], ["variance"]),
            ]
            score_in = "variance"
            weight = np.full((ANCHORS, 3, 1, 1), GAIN / 3)
            bias = np.full(ANCHORS, -OFFSET)
        else:
            score_in = pooled
            weight = np.zeros((ANCHORS, 3, 1, 1))
            bias = np.full(ANCHORS, -20.0)
        heads = {
            "score": (score_in, weight, bias),
            "bbox": (pooled, np.zeros((ANCHORS * 4, 3, 1, 1)), np.full(ANCHORS * 4, BOX)),
            "kps": (
                pooled,
                np.zeros((ANCHORS * 10, 3, 1, 1)),
                np.tile(np.array(KEY_POINTS).reshape(-1), ANCHORS),
            ),
        }
        for head, (source, w, b) in heads.items():
            name = f"{head}_{s}"
            inits += [_init(f"{name}.w", w), _init(f"{name}.b", b)]
            nodes.append(helper.make_node("Conv", [source, f"{name}.w", f"{name}.b"], [name]))
            last = name
            if head == "score":
                nodes.append(helper.make_node("Sigmoid", [name], [f"{name}.p"]))
                last = f"{name}.p"
            # NCHW -> rows ordered (y, x, anchor), as SCRFD's anchor centres are
            nodes.append(helper.make_node("Transpose", [last], [f"{name}.t"], perm=[0, 2, 3, 1]))
            nodes.append(
                helper.make_node("Reshape", [f"{name}.t", f"rows{widths[head]}"], [name + ".out"])
            )
            outputs[head].append(
                helper.make_tensor_value_info(name + ".out", TensorProto.FLOAT, ["n", widths[head]])
            )
    for width in sorted(set(widths.values())):  # Reshape targets: (-1, width)
        inits.append(numpy_helper.from_array(np.array([-1, width], dtype=np.int64), f"rows{width}"))
    ordered = outputs["score"] + outputs["bbox"] + outputs["kps"]
    return helper.make_graph(nodes, "scrfd_synthetic", [x], ordered, inits)


def _pooled_head(name: str, side: int, width: int, seed: int):
    """Global average of the pixels, then a fixed random matrix: ``width`` outputs near 0."""
    import numpy as np
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["n", 3, side, side])
    y = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["n", width])
    inits = [
        _init(f"{name}.w", rng.normal(0.0, 0.05, (width, 3))),
        _init(f"{name}.b", rng.uniform(-0.5, 0.5, width)),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", f"{name}.w", f"{name}.b"], ["fc1"], name="fc", transB=1),
    ]
    return helper.make_graph(nodes, f"{name}_synthetic", [x], [y], inits)


def _arcface():
    """112² face -> 512-d embedding: an 8×8-stride convolution, ReLU, pooling, projection."""
    import numpy as np
    from onnx import TensorProto, helper

    rng = np.random.default_rng(512)
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["n", 3, 112, 112])
    y = helper.make_tensor_value_info("683", TensorProto.FLOAT, ["n", 512])
    inits = [
        _init("conv.w", rng.normal(0.0, 0.1, (64, 3, 8, 8))),
        _init("conv.b", rng.normal(0.0, 0.1, 64)),
        _init("fc.w", rng.normal(0.0, 0.2, (512, 64))),
        _init("fc.b", np.zeros(512)),
    ]
    nodes = [  # names not starting "Sub"/"Mul": InsightFace then normalises to (x - 127.5) / 127.5
        helper.make_node(
            "Conv", ["input.1", "conv.w", "conv.b"], ["c"], name="conv", strides=[8, 8]
        ),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["683"], name="fc", transB=1),
    ]
    return helper.make_graph(nodes, "arcface_synthetic", [x], [y], inits)


def _liveportrait_landmark():
    """Three outputs as LivePortrait's runner reads them (it takes the third): points from
    pooled pixels, spread over the middle of the crop."""
    import numpy as np
    from onnx import TensorProto, helper

    rng = np.random.default_rng(LANDMARK_POINTS)
    width = 2 * LANDMARK_POINTS
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])
    outs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, n])
        for name, n in (("out0", 1), ("out1", 1), ("pts", width))
    ]
    inits = [
        _init("pts.w", rng.normal(0.0, 0.02, (width, 3))),
        _init("pts.b", rng.uniform(0.3, 0.7, width)),
        _init("one.w", np.zeros((1, 3))),
        _init("one.b", np.ones(1)),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "pts.w", "pts.b"], ["pts"], name="pts", transB=1),
        helper.make_node("Gemm", ["flat", "one.w", "one.b"], ["out0"], name="out0", transB=1),
        helper.make_node("Identity", ["out0"], ["out1"], name="out1"),
    ]
    return helper.make_graph(nodes, "landmark_synthetic", [x], outs, inits)


def _inswapper():
    """The target face, toned by the donor: ``0.8 * target + 0.2 * sigmoid(W · source)`` per
    channel (the output changes with the donor's face and keeps the target's)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(128)
    side = SWAP_SIDE
    target = helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, side, side])
    source = helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, EMBEDDING])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, side, side])
    inits = [
        _init("tone.w", rng.normal(0.0, 2.0, (3, EMBEDDING))),
        _init("tone.b", np.zeros(3)),
        _init("keep", np.full((1,), 0.8)),
        _init("mix", np.full((1,), 0.2)),
        numpy_helper.from_array(np.array([1, 3, 1, 1], dtype=np.int64), "per_channel"),
        _init("emap", rng.normal(0.0, EMBEDDING**-0.5, (EMBEDDING, EMBEDDING))),  # last
    ]
    nodes = [
        helper.make_node("Gemm", ["source", "tone.w", "tone.b"], ["tone"], name="tone", transB=1),
        helper.make_node("Sigmoid", ["tone"], ["tone.p"], name="sigmoid"),
        helper.make_node("Reshape", ["tone.p", "per_channel"], ["tone.c"], name="reshape"),
        helper.make_node("Mul", ["tone.c", "mix"], ["tone.m"], name="mix"),
        helper.make_node("Mul", ["target", "keep"], ["kept"], name="keep"),
        helper.make_node("Add", ["kept", "tone.m"], ["output"], name="add"),
    ]
    return helper.make_graph(nodes, "inswapper_synthetic", [target, source], [output], inits)


def _verify_inswapper(path: str) -> str:
    """InsightFace's router must take it for an INSwapper, its emap be 512×512, and the swapped
    face depend on the donor's embedding."""
    import numpy as np
    from insightface.model_zoo import model_zoo

    model = model_zoo.get_model(path, providers=["CPUExecutionProvider"])
    if type(model).__name__ != "INSwapper":
        raise ValueError(f"InsightFace routes it to {type(model).__name__}, not INSwapper")
    if model.emap.shape != (EMBEDDING, EMBEDDING):
        raise ValueError(f"emap {model.emap.shape}")
    rng = np.random.default_rng(0)
    face = rng.random((1, 3, SWAP_SIDE, SWAP_SIDE), dtype=np.float32)
    outs = [
        model.session.run(
            None, {"target": face, "source": rng.normal(size=(1, EMBEDDING)).astype(np.float32)}
        )[0]
        for _ in range(2)
    ]
    if outs[0].shape != face.shape or np.allclose(outs[0], outs[1]):
        raise ValueError(f"output {outs[0].shape}, donor-dependent: {not np.allclose(*outs)}")
    return "InsightFace routes it to INSwapper; emap 512×512; the output depends on the donor"


def verify_onnx(arch: str) -> str:
    """Route the file through InsightFace's own ``model_zoo`` (its task must be the one built);
    the detector must find faces in a textured image and none in a flat one."""
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, f"{arch}.onnx")
        write_onnx(arch, path)
        if arch == "liveportrait-landmark":
            return _verify_landmark(path)
        if arch == "inswapper-128":
            return _verify_inswapper(path)
        from insightface.model_zoo import model_zoo

        model = model_zoo.get_model(path, providers=["CPUExecutionProvider"])
        task = getattr(model, "taskname", None)
        if task != ONNX_TASKS[arch]:
            raise ValueError(f"InsightFace routes it to {task!r}, not {ONNX_TASKS[arch]!r}")
        if task != "detection":
            return f"InsightFace task {task}, input {model.input_shape}"
        model.prepare(0, input_size=(640, 640), det_thresh=0.5)
        rng = np.random.default_rng(0)
        textured = rng.integers(0, 256, (480, 360, 3), dtype=np.uint8)
        faces, kps = model.detect(textured)
        flat, _ = model.detect(np.full((480, 360, 3), 128, dtype=np.uint8))
        if len(faces) == 0 or len(flat) != 0 or kps is None:
            raise ValueError(f"{len(faces)} faces in a textured image, {len(flat)} in a flat one")
        return f"InsightFace task detection, {len(faces)} faces in noise, 0 in a flat image"


# --- InstantID


def sdxl_attn2_widths(unet: dict) -> list[int]:
    """Width of each SDXL cross-attention in ComfyUI_InstantID's patch order: input blocks,
    output blocks, middle (the ``transformer_depth*`` of ComfyUI's SDXL config)."""
    channels, mult, res_blocks = (
        unet["model_channels"],
        unet["channel_mult"],
        unet["num_res_blocks"],
    )
    widths: list[int] = []
    depths = iter(unet["transformer_depth"])
    for level, m in enumerate(mult):
        for _ in range(res_blocks[level]):
            widths += [channels * m] * next(depths)
    depths = reversed(unet["transformer_depth_output"])  # ComfyUI pops it from the end
    for level in reversed(range(len(mult))):
        for _ in range(res_blocks[level] + 1):
            widths += [channels * mult[level]] * next(depths)
    return widths + [channels * mult[-1]] * unet["transformer_depth_middle"]


def instantid_ip_adapter(
    unet: dict, dim=1280, depth=4, heads=20, queries=16, embed=512, tokens=2048
):
    """State-dict builder (flat keys ``image_proj.*``, ``ip_adapter.*``; ``nest`` makes the
    pickled layout)."""

    def build(device, dtype):
        import torch

        def t(*shape):
            return torch.empty(shape, device=device, dtype=dtype)

        inner = 64 * heads
        proj = {
            "latents": t(1, queries, dim),
            "proj_in.weight": t(dim, embed),
            "proj_in.bias": t(dim),
            "proj_out.weight": t(tokens, dim),
            "proj_out.bias": t(tokens),
            "norm_out.weight": t(tokens),
            "norm_out.bias": t(tokens),
        }
        for i in range(depth):
            layer = f"layers.{i}"
            for norm in ("norm1", "norm2"):
                proj[f"{layer}.0.{norm}.weight"] = t(dim)
                proj[f"{layer}.0.{norm}.bias"] = t(dim)
            proj[f"{layer}.0.to_q.weight"] = t(inner, dim)
            proj[f"{layer}.0.to_kv.weight"] = t(2 * inner, dim)
            proj[f"{layer}.0.to_out.weight"] = t(dim, inner)
            proj[f"{layer}.1.0.weight"] = t(dim)
            proj[f"{layer}.1.0.bias"] = t(dim)
            proj[f"{layer}.1.1.weight"] = t(4 * dim, dim)
            proj[f"{layer}.1.3.weight"] = t(dim, 4 * dim)
        sd = {f"image_proj.{k}": v for k, v in proj.items()}
        for n, width in enumerate(sdxl_attn2_widths(unet)):
            for kv in ("k", "v"):
                sd[f"ip_adapter.{2 * n + 1}.to_{kv}_ip.weight"] = t(width, tokens)
        return sd

    build.nested = True
    return build


def nest(sd: dict) -> dict:
    """``{"image_proj.x": t}`` -> ``{"image_proj": {"x": t}}`` (the pickled file's layout)."""
    out: dict = {}
    for key, value in sd.items():
        head, rest = key.split(".", 1)
        out.setdefault(head, {})[rest] = value
    return out


def verify_instantid(sd: dict, unet) -> str:
    """Each ``ip_adapter`` pair must fit the cross-attention ComfyUI_InstantID patches with it:
    walked in the pack's order over ComfyUI's own SDXL UNet (``unet``, built on ``meta``)."""
    blocks = [*((f"input_blocks.{i}", d) for i, d in ((4, 2), (5, 2), (7, 10), (8, 10)))]
    blocks += [(f"output_blocks.{i}", 10 if i < 3 else 2) for i in range(6)]
    blocks += [("middle_block", 10)]
    modules = dict(unet.named_modules())
    n = 0
    for block, depth in blocks:
        for i in range(depth):
            attn = modules[f"{block}.1.transformer_blocks.{i}.attn2"]
            for kv in ("k", "v"):
                key = f"ip_adapter.{2 * n + 1}.to_{kv}_ip.weight"
                want = (attn.to_q.out_features, attn.to_k.in_features)
                if tuple(sd[key].shape) != want:
                    raise ValueError(f"{key}: {tuple(sd[key].shape)}, the UNet needs {want}")
            n += 1
    extra = len([k for k in sd if k.startswith("ip_adapter.")]) - 2 * n
    if extra:
        raise ValueError(f"{extra} ip_adapter tensors no cross-attention takes")
    return f"{n} SDXL cross-attentions take the ip_adapter pairs"


def _verify_landmark(path: str) -> str:
    """Run it as LivePortrait's ``LandmarkRunner`` does: 203 points inside the crop."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    crop = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    points = session.run(None, {"input": crop})[2][0].reshape(-1, 2) * 224
    if points.shape != (LANDMARK_POINTS, 2) or not (0 <= points).all() or (points > 224).any():
        raise ValueError(f"points {points.shape}, range {points.min():.1f}..{points.max():.1f}")
    return f"{LANDMARK_POINTS} points from output 2, within the 224-pixel crop"

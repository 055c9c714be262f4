"""medgen's GGUF reader against the `gguf` Python package (the reference): dequantization of every
supported tensor type, and clean one-line errors (never a panic or a signal) on corrupt and
hostile files."""

import struct
import subprocess
import time

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from conftest import MEDGEN, peak_rss_mib


def medgen(*args):
    """Runs medgen without checking its exit code; waits a while if the binary is being rebuilt."""
    deadline = time.monotonic() + 300
    while True:
        try:
            proc = subprocess.run(
                [str(MEDGEN), *map(str, args)], capture_output=True, text=True, timeout=120
            )
        except OSError:  # missing, or "text file busy" while being relinked
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
            continue
        assert proc.returncode != 101 and "panicked" not in proc.stderr, proc.stderr
        assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr}"
        return proc


def assert_clean_error(proc, all_of=(), any_of=()):
    """Exit code 1 and exactly one stderr line, "error: ...", containing the given words."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    msg = lines[0].lower()
    for word in all_of:
        assert word.lower() in msg, msg
    if any_of:
        assert any(w.lower() in msg for w in any_of), msg


# ---------------------------------------------------------------------------------------------
# Dequantization, per type, against gguf.quants.dequantize

# Byte offsets of the f16 scale fields (d, dmin, m) in each block (GGML block structs).
F16_FIELDS = {
    T.Q4_0: [0],  # d, qs[16]
    T.Q4_1: [0, 2],  # d, m, qs[16]
    T.Q5_0: [0],  # d, qh[4], qs[16]
    T.Q5_1: [0, 2],  # d, m, qh[4], qs[16]
    T.Q8_0: [0],  # d, qs[32] int8
    T.Q2_K: [80, 82],  # scales[16], qs[64], d, dmin
    T.Q3_K: [108],  # hmask[32], qs[64], scales[12], d
    T.Q4_K: [0, 2],  # d, dmin, scales[12], qs[128]
    T.Q5_K: [0, 2],  # d, dmin, scales[12], qh[32], qs[128]
    T.Q6_K: [208],  # ql[128], qh[64], scales[16] int8, d
}
FLOAT_TYPES = [T.F32, T.F16, T.BF16]
ALL_TYPES = FLOAT_TYPES + list(F16_FIELDS)
SHAPES = [(4, 512), (2, 3, 512), (1024,)]  # PyTorch order; the last dim is the GGML row


def random_raw(qtype, shape, seed):
    """Raw tensor bytes of `qtype`, uint8 with shape (*shape[:-1], bytes per row)."""
    rng = np.random.default_rng(seed)
    if qtype in FLOAT_TYPES:
        x = (rng.standard_normal(shape) * 3).astype(np.float32)
        # A few edge values: signed zero, tiny (f16/bf16 subnormal) and large magnitudes.
        x.flat[:6] = [0.0, -0.0, 3e-6, -6e-8, 6.0e4, -1.5e4]
        if qtype == T.F32:
            return x.view(np.uint8).reshape(*shape[:-1], -1)
        if qtype == T.F16:
            return x.astype(np.float16).view(np.uint8).reshape(*shape[:-1], -1)
        bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)  # BF16 = top half of the f32 bits
        return bf16.view(np.uint8).reshape(*shape[:-1], -1)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = int(np.prod(shape)) // block_size
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        assert off + 2 <= type_size
        # Finite f16 scales over a wide range of exponents, subnormals included.
        scale = rng.standard_normal(n_blocks) * np.exp2(rng.integers(-22, 3, n_blocks))
        blocks[:, off : off + 2] = scale.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(*shape[:-1], -1)


def write_gguf(path, tensors, arch="llama"):
    """GGUF written by the reference writer; tensors = {name: (raw uint8 bytes, qtype)}."""
    w = gguf.GGUFWriter(str(path), arch)
    for name, (raw, qtype) in tensors.items():
        w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda t: t.name)
def test_tensor_dequantizes_like_reference(tmp_path, qtype, shape):
    raw = random_raw(qtype, shape, seed=int(qtype) * 10 + len(shape))
    path = tmp_path / "m.gguf"
    # A 5-value tensor first, so that blk.0.w starts at a non-zero, padded data offset.
    norm = np.arange(5, dtype=np.float32).view(np.uint8).reshape(1, -1)
    write_gguf(path, {"blk.0.attn_norm.weight": (norm, T.F32), "blk.0.w": (raw, qtype)})
    out = tmp_path / "w.npy"
    proc = medgen("tensor", "--model", path, "blk.0.w", "--out", out)
    assert proc.returncode == 0, proc.stderr
    got = np.load(out)
    want = gguf.quants.dequantize(raw, qtype)
    assert want.shape == shape and np.isfinite(want).all()
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# Corrupt and hostile files, built by hand

U8, U32, STRING, ARRAY = 0, 4, 8, 9


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv_str(key, value):
    return gstr(key) + struct.pack("<I", STRING) + gstr(value)


def tensor_info(name, dims, ggml_type, offset=0):
    return (gstr(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
            + struct.pack("<IQ", ggml_type, offset))


def header(kvs=(), infos=(), version=3, n_tensors=None, n_kv=None):
    n_tensors = len(infos) if n_tensors is None else n_tensors
    n_kv = len(kvs) if n_kv is None else n_kv
    return (b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)
            + b"".join(kvs) + b"".join(infos))


def gguf_file(path, kvs=(), infos=(), data=b"", **kw):
    head = header(kvs, infos, **kw)
    path.write_bytes(head + b"\0" * (-len(head) % 32) + data)
    return path


ARCH = kv_str("general.architecture", "llama")
SMALL_KVS = [ARCH, kv_str("general.name", "tiny test model")]
SMALL_INFOS = [tensor_info("blk.0.w", [4, 2], T.F32)]
SMALL_DATA = np.arange(8, dtype=np.float32).tobytes()


def test_hand_built_small_gguf_is_valid(tmp_path):
    """The builder used below makes files that both the reference and medgen accept."""
    path = gguf_file(tmp_path / "ok.gguf", SMALL_KVS, SMALL_INFOS, SMALL_DATA)
    ref = gguf.GGUFReader(path).get_tensor(0)
    assert ref.name == "blk.0.w" and list(ref.shape) == [4, 2]
    proc = medgen("tensor", "--model", path, "blk.0.w", "--out", tmp_path / "o.npy")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), np.arange(8.0).reshape(2, 4))


HUGE = 2**60
TRUNC = ("truncated", "past the end", "absurd", "impossible", "too large", "end of file")

# name -> (file bytes, words of which the error must contain at least one)
HOSTILE = {
    "empty": (b"", ["truncated"]),
    "bad_magic": (b"GGML" + header(SMALL_KVS, SMALL_INFOS)[4:], ["magic"]),
    "version_1": (header(SMALL_KVS, SMALL_INFOS, version=1), ["version"]),
    "version_99": (header(SMALL_KVS, SMALL_INFOS, version=99), ["version"]),
    "absurd_tensor_count": (header(SMALL_KVS, SMALL_INFOS, n_tensors=HUGE), TRUNC),
    "absurd_kv_count": (header(SMALL_KVS, SMALL_INFOS, n_kv=HUGE), TRUNC),
    "absurd_key_length": (header([struct.pack("<Q", 2**62) + b"general.architecture"]), TRUNC),
    "absurd_string_value_length": (
        header([gstr("general.name") + struct.pack("<IQ", STRING, 2**62) + b"abc"]), TRUNC),
    "absurd_array_length": (
        header([gstr("general.blob") + struct.pack("<IIQ", ARRAY, U8, 2**62) + b"abc"]), TRUNC),
    "unknown_value_type": (
        header([ARCH, gstr("general.x") + struct.pack("<I", 99) + b"\0" * 8]), ["type"]),
    "tensor_5_dims": (header([ARCH], [tensor_info("blk.0.w", [2, 2, 2, 2, 2], T.F32)]),
                      ["dim"]),
    "tensor_dims_overflow": (
        header([ARCH], [tensor_info("blk.0.w", [2**32, 2**32, 2**32], T.F32)]),
        ["overflow", "absurd", "impossible", "too large", "too many"]),
}


@pytest.mark.parametrize("command", ["tensor", "info", "tokenize"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_header_gives_one_line_error(tmp_path, case, command):
    data, words = HOSTILE[case]
    path = tmp_path / "bad.gguf"
    path.write_bytes(data + b"\0" * 64 if case != "empty" else data)
    args = {"tensor": ["blk.0.w", "--out", tmp_path / "o.npy"], "info": [],
            "tokenize": ["--prompt", "fever"]}[command]
    assert_clean_error(medgen(command, "--model", path, *args), any_of=words)


@pytest.mark.parametrize("command", ["tensor", "info", "tokenize"])
def test_missing_file_gives_one_line_error(tmp_path, command):
    path = tmp_path / "no_such_model.gguf"
    args = ["blk.0.w", "--out", tmp_path / "o.npy"] if command == "tensor" else []
    assert_clean_error(medgen(command, "--model", path, *args), all_of=["no_such_model.gguf"])


def test_header_truncated_in_any_field_gives_truncated_error(tmp_path):
    """A valid file cut inside each field of its header, from the magic to the last tensor info."""
    fields = [b"GGUF", struct.pack("<I", 3), struct.pack("<Q", 1), struct.pack("<Q", 2)]
    for key, value in [("general.architecture", "llama"), ("general.name", "tiny test model")]:
        fields += [gstr(key)[:8], key.encode(), struct.pack("<I", STRING), gstr(value)[:8],
                   value.encode()]
    fields += [gstr("blk.0.w")[:8], b"blk.0.w", struct.pack("<I", 2), struct.pack("<QQ", 4, 2),
               struct.pack("<I", T.F32), struct.pack("<Q", 0)]
    head = b"".join(fields)
    assert head == header(SMALL_KVS, SMALL_INFOS)
    full = head + b"\0" * (-len(head) % 32) + SMALL_DATA
    starts = np.cumsum([0] + [len(f) for f in fields[:-1]])
    cuts = sorted({0, len(head) - 1, *(int(st) + len(f) // 2 for st, f in zip(starts, fields))})
    path = tmp_path / "cut.gguf"
    for cut in cuts:  # one run per cut: each run loads libtorch (~0.6 s)
        path.write_bytes(full[:cut])
        proc = medgen("tensor", "--model", path, "blk.0.w", "--out", tmp_path / "o.npy")
        assert "truncated" in proc.stderr, f"cut at byte {cut} of {len(head)}: {proc.stderr}"
        assert_clean_error(proc, any_of=["truncated"])


@pytest.mark.parametrize("case", ["data_cut", "data_missing", "offset_far", "offset_wraps"])
def test_tensor_data_past_end_of_file_gives_error(tmp_path, case):
    infos, data = SMALL_INFOS, SMALL_DATA
    if case == "data_cut":
        data = SMALL_DATA[:-5]
    elif case == "data_missing":
        data = b""
    elif case == "offset_far":
        infos = [tensor_info("blk.0.w", [4, 2], T.F32, offset=2**40)]
    else:  # offset + size overflows u64
        infos = [tensor_info("blk.0.w", [4, 2], T.F32, offset=2**64 - 32)]
    path = gguf_file(tmp_path / "bad.gguf", SMALL_KVS, infos, data)
    proc = medgen("tensor", "--model", path, "blk.0.w", "--out", tmp_path / "o.npy")
    assert_clean_error(proc, any_of=["past the end", "truncated", "beyond", "overflow"])


def test_unsupported_tensor_type_is_named(tmp_path):
    _, type_size = gguf.GGML_QUANT_SIZES[T.IQ2_XXS]  # 256 values in 66 bytes
    infos = [tensor_info("blk.0.w", [256, 2], T.IQ2_XXS)]
    path = gguf_file(tmp_path / "iq.gguf", [ARCH], infos, bytes(2 * type_size))
    proc = medgen("tensor", "--model", path, "blk.0.w", "--out", tmp_path / "o.npy")
    assert_clean_error(proc, all_of=["unsupported", "IQ2_XXS"])


def test_unknown_tensor_type_id_gives_error(tmp_path):
    path = gguf_file(tmp_path / "t.gguf", [ARCH], [tensor_info("blk.0.w", [32], 1000)], bytes(64))
    proc = medgen("tensor", "--model", path, "blk.0.w", "--out", tmp_path / "o.npy")
    assert_clean_error(proc, all_of=["1000"], any_of=["unknown", "unsupported", "invalid"])


def test_quantized_row_not_multiple_of_block_gives_error(tmp_path):
    path = gguf_file(tmp_path / "t.gguf", [ARCH], [tensor_info("blk.0.w", [33, 2], T.Q4_0)],
                     bytes(128))
    proc = medgen("tensor", "--model", path, "blk.0.w", "--out", tmp_path / "o.npy")
    assert_clean_error(proc, any_of=["block", "multiple", "impossible"])


def test_unsupported_architecture_is_named(tmp_path):
    raw = random_raw(T.F32, (4, 512), seed=7)
    path = tmp_path / "falcon.gguf"
    write_gguf(path, {"token_embd.weight": (raw, T.F32)}, arch="falcon")
    assert gguf.GGUFReader(path).fields["general.architecture"].contents() == "falcon"
    assert_clean_error(medgen("info", "--model", path), all_of=["falcon"])


def test_out_file_is_never_overwritten_silently_nor_left_half_written(tmp_path):
    path = gguf_file(tmp_path / "m.gguf", SMALL_KVS, SMALL_INFOS, SMALL_DATA)
    out = tmp_path / "o.npy"
    out.write_bytes(b"keep me")
    proc = medgen("tensor", "--model", path, "blk.0.w", "--out", out)
    assert proc.returncode == 1 and "--force" in proc.stderr and str(out) in proc.stderr
    assert out.read_bytes() == b"keep me"
    proc = medgen("tensor", "--model", path, "blk.0.w", "--out", out, "--force")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(out), np.arange(8.0).reshape(2, 4))
    # A failed run leaves no file and no temporary file behind.
    proc = medgen("tensor", "--model", path, "no.such.tensor", "--out", tmp_path / "new.npy")
    assert proc.returncode == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf", "o.npy"]


def test_generating_costs_about_the_weight_file_in_memory():
    """The default GGUF's blocks are used as stored: no dense f32 copy of its weights (4 to 8
    times the file) is made at load. Peak memory while generating, above that of the same
    binary doing nothing (libtorch's libraries), stays under 1.3 times the file, with a
    prompt long enough to go through the prefill's products (not the decode kernels)."""
    from conftest import DEFAULT_DIR, DEFAULT_FILE

    size = (DEFAULT_DIR / DEFAULT_FILE).stat().st_size / 2**20
    prompt = "Discharge summary. " + "The patient was admitted with chest pain and discharged home. " * 6
    idle = peak_rss_mib("--version")
    generating = peak_rss_mib("generate", "--prompt", prompt, "--max-new-tokens", 8, "--threads", 2)
    assert generating - idle < 1.3 * size, (generating, idle, size)

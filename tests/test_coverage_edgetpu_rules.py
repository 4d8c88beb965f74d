"""Edge TPU rules on TFLite op records (the API the .tflite-side check reuses)."""

from edgebuild.coverage.edgetpu import partition_tflite_ops
from edgebuild.coverage.partition import FALLBACK, RESTRICTION, SUPPORTED, UNSUPPORTED


def t(shape, dtype="int8", **extra):
    return {"dtype": dtype, "shape": shape, **extra}


def conv(index, macs=1000, **options):
    return {
        "index": index,
        "op": "CONV_2D",
        "inputs": [t([1, 8, 8, 3]), t([8, 3, 3, 3], constant=True), t([8], "int32", constant=True)],
        "outputs": [t([1, 8, 8, 8])],
        "options": options,
        "macs": macs,
    }


def test_all_mapped_model_stays_on_the_tpu():
    ops = [conv(0), {"index": 1, "op": "RELU", "inputs": [t([1, 8, 8, 8])], "outputs": [t([1, 8, 8, 8])]}]
    part = partition_tflite_ops(ops)
    assert part.first_fallback_index is None
    assert part.ops_share == 1.0 and part.macs_share == 1.0


def test_first_unsupported_op_cuts_the_rest_to_cpu():
    ops = [
        conv(0, 100),
        {"index": 1, "op": "SIN", "inputs": [t([1, 8, 8, 8])], "outputs": [t([1, 8, 8, 8])]},
        conv(2, 300),
    ]
    part = partition_tflite_ops(ops)
    assert part.first_fallback_index == 1 and part.first_fallback_op == "SIN"
    assert [p.status for p in part.placements] == [SUPPORTED, UNSUPPORTED, FALLBACK]
    assert part.accelerated_ops == 1 and part.macs_share == 100 / 400


def test_float_tensor_breaks_the_dtype_rule():
    op = conv(0)
    op["inputs"][0] = t([1, 8, 8, 3], "float32")
    part = partition_tflite_ops([op])
    assert part.placements[0].status == RESTRICTION
    assert "data type" in part.placements[0].reason


def test_rank_rule_allows_only_three_inner_dims_above_one():
    ok = {"index": 0, "op": "ADD", "inputs": [t([1, 1, 4, 5, 6])] * 2, "outputs": [t([1, 1, 4, 5, 6])]}
    bad = {"index": 0, "op": "ADD", "inputs": [t([2, 3, 4, 5])] * 2, "outputs": [t([2, 3, 4, 5])]}
    assert partition_tflite_ops([ok]).placements[0].on_accelerator
    placement = partition_tflite_ops([bad]).placements[0]
    assert not placement.on_accelerator and "rank" in placement.reason


def test_dynamic_size_is_not_mapped():
    op = {"index": 0, "op": "RELU", "inputs": [t([-1, 8])], "outputs": [t([-1, 8])]}
    assert "constant" in partition_tflite_ops([op]).placements[0].reason


def test_op_constraints():
    dil = conv(0, dilation_w_factor=2, dilation_h_factor=1)
    assert "dilation" in partition_tflite_ops([dil]).placements[0].reason
    pool = {
        "index": 0,
        "op": "MAX_POOL_2D",
        "inputs": [t([1, 8, 8, 8])],
        "outputs": [t([1, 4, 4, 8])],
        "options": {"fused_activation_function": "RELU"},
    }
    assert "fused activation" in partition_tflite_ops([pool]).placements[0].reason
    softmax = {"index": 0, "op": "SOFTMAX", "inputs": [t([1, 20000])], "outputs": [t([1, 20000])]}
    assert "16000" in partition_tflite_ops([softmax]).placements[0].reason
    mean = {
        "index": 0,
        "op": "MEAN",
        "inputs": [t([1, 4, 4, 6]), t([1], "int32", value=[3])],
        "outputs": [t([1, 4, 4, 1])],
    }
    assert "multiple of 4" in partition_tflite_ops([mean]).placements[0].reason
    pad = {
        "index": 0,
        "op": "PAD",
        "inputs": [t([4, 4, 8]), t([3, 2], "int32", value=[[1, 0], [1, 1], [0, 0]])],
        "outputs": [t([5, 6, 8])],
    }
    assert "batch" in partition_tflite_ops([pad]).placements[0].reason
    ss = {
        "index": 0,
        "op": "STRIDED_SLICE",
        "inputs": [t([1, 8]), t([2], "int32"), t([2], "int32"), t([2], "int32", value=[1, 2])],
        "outputs": [t([1, 4])],
    }
    assert "strides" in partition_tflite_ops([ss]).placements[0].reason


def test_float_io_quantize_at_edges_does_not_cut():
    ops = [
        {"index": 0, "op": "QUANTIZE", "inputs": [t([1, 8, 8, 3], "float32")], "outputs": [t([1, 8, 8, 3])]},
        conv(1),
        {
            "index": 2,
            "op": "DEQUANTIZE",
            "inputs": [t([1, 8, 8, 8])],
            "outputs": [t([1, 8, 8, 8], "float32")],
        },
    ]
    part = partition_tflite_ops(ops)
    assert part.first_fallback_index is None
    assert [p.on_accelerator for p in part.placements] == [False, True, False]

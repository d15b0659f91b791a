"""A BERT encoder as an ONNX graph, built in memory from its weights with the `onnx` helper API.

Built at load time rather than exported once with torch and shipped: the graph is these few dozen lines to
read, nothing outside the weights is a binary blob, and torch is never needed. The graph takes `input_ids` and
`attention_mask` (int64, batch x tokens) and gives the last hidden state (float32, batch x tokens x hidden);
token type ids are all 0 for single texts, so token type embedding 0 is folded into the position embeddings.
Names of the weights are Hugging Face's `BertModel` names.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

# LayerNormalization is an operator from opset 17 on.
OPSET = 17

Weights = dict[str, npt.NDArray[np.float32]]


def bert_graph(weights: Weights, *, layers: int, heads: int, layer_norm_eps: float) -> onnx.ModelProto:
    word = weights["embeddings.word_embeddings.weight"]
    hidden = word.shape[1]
    head_size = hidden // heads
    initializers: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: npt.ArrayLike, dtype: npt.DTypeLike = np.float32) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def linear(x: str, prefix: str) -> str:
        # torch's Linear keeps its weight as out x in; MatMul wants in x out.
        w = const(f"{prefix}.weight", weights[f"{prefix}.weight"].T)
        b = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return node("Add", [node("MatMul", [x, w], f"{prefix}.matmul"), b], f"{prefix}.out")

    def layer_norm(x: str, prefix: str) -> str:
        scale = const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        bias = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return node("LayerNormalization", [x, scale, bias], f"{prefix}.out", axis=-1, epsilon=layer_norm_eps)

    split_heads = const("split_heads", [0, 0, heads, head_size], np.int64)
    join_heads = const("join_heads", [0, 0, hidden], np.int64)
    scale = const("attention_scale", 1.0 / math.sqrt(head_size))

    # Embeddings: word + position (+ token type 0), normalised.
    tokens = node("Shape", ["input_ids"], "tokens", start=1, end=2)
    positions = node(
        "Slice",
        [
            const(
                "embeddings.position_embeddings.weight",
                weights["embeddings.position_embeddings.weight"]
                + weights["embeddings.token_type_embeddings.weight"][0],
            ),
            const("zero", [0], np.int64),
            tokens,
        ],
        "positions",
    )
    words = node("Gather", [const("embeddings.word_embeddings.weight", word), "input_ids"], "words")
    x = layer_norm(node("Add", [words, positions], "embeddings.sum"), "embeddings.LayerNorm")

    # The mask as an additive bias on the attention scores: 0 where a token is, float32's lowest where padding is.
    mask = node("Cast", ["attention_mask"], "mask.float", to=TensorProto.FLOAT)
    padding = node("Sub", [const("one", 1.0), mask], "mask.padding")
    bias = node("Mul", [padding, const("lowest", np.finfo(np.float32).min)], "mask.scaled")
    attention_bias = node("Unsqueeze", [bias, const("mask_axes", [1, 2], np.int64)], "mask.bias")

    for i in range(layers):
        p = f"encoder.layer.{i}"

        def heads_of(x: str, projection: str, perm: list[int], p: str = p) -> str:
            """batch x tokens x hidden -> batch x heads x ... (`perm` orders the last two axes)."""
            projected = linear(x, f"{p}.attention.self.{projection}")
            shaped = node("Reshape", [projected, split_heads], f"{p}.{projection}.heads")
            return node("Transpose", [shaped], f"{p}.{projection}.t", perm=perm)

        query = heads_of(x, "query", [0, 2, 1, 3])
        key = heads_of(x, "key", [0, 2, 3, 1])
        value = heads_of(x, "value", [0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [query, key], f"{p}.scores.raw"), scale], f"{p}.scores.scaled")
        probabilities = node(
            "Softmax", [node("Add", [scores, attention_bias], f"{p}.scores")], f"{p}.probs", axis=-1
        )
        context = node(
            "Transpose",
            [node("MatMul", [probabilities, value], f"{p}.context.heads")],
            f"{p}.context.t",
            perm=[0, 2, 1, 3],
        )
        context = node("Reshape", [context, join_heads], f"{p}.context")
        attended = node("Add", [linear(context, f"{p}.attention.output.dense"), x], f"{p}.attention.residual")
        x = layer_norm(attended, f"{p}.attention.output.LayerNorm")

        # GELU, the exact (erf) form BERT uses: x/2 * (1 + erf(x / sqrt 2)).
        h = linear(x, f"{p}.intermediate.dense")
        erf = node(
            "Erf",
            [node("Mul", [h, const(f"{p}.gelu.c", 1 / math.sqrt(2))], f"{p}.gelu.scaled")],
            f"{p}.gelu.erf",
        )
        gate = node(
            "Mul",
            [node("Add", [erf, "one"], f"{p}.gelu.plus1"), const(f"{p}.gelu.half", 0.5)],
            f"{p}.gelu.gate",
        )
        activated = node("Mul", [h, gate], f"{p}.gelu")
        out = node("Add", [linear(activated, f"{p}.output.dense"), x], f"{p}.output.residual")
        x = layer_norm(out, f"{p}.output.LayerNorm")

    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    graph = helper.make_graph(
        nodes,
        "bert",
        inputs=[
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        outputs=[
            helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", hidden])
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tributary"
    )
    onnx.checker.check_model(model)
    return model

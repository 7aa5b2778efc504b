"""The int8 embedding backend: the model exported to ONNX, quantised once per machine and cached, run by
ONNX Runtime. `python -m rag.index.onnx_runner prepare` makes the cached copy ahead of time."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ConfigError
from rag.index.embedder import INT8_RECIPE, PACKAGED_MODEL_NAME, cpu_count, logger, read_json
from rag.index.priority import is_background
from rag.records import Vectors

SAME_LENGTH_BATCH = 64  # texts of one token count per model call


BACKGROUND_TEXTS_PER_CORE = 4  # indexing holds the model for this many texts per core at a time


class OnnxRunner:
    """The int8 ONNX copy of the model under ONNX Runtime; tokenises exactly as sentence-transformers does."""

    def __init__(self, model_dir: Path, cache_dir: Path, threads: int | None) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(
                "The int8 embedding backend needs onnxruntime: run `make install`, "
                "or set ARCHIVIST_EMBEDDING_BACKEND=torch."
            ) from None
        from tokenizers import Tokenizer

        _check_mean_pooled(model_dir)
        config = read_json(model_dir / "config.json")
        st_config = read_json(model_dir / "sentence_bert_config.json")
        self.max_tokens = int(st_config.get("max_seq_length") or 256)
        self.dimension = int(config.get("hidden_size") or 384)
        if not (model_dir / "tokenizer.json").is_file():
            raise ConfigError(
                f"No tokenizer.json in {model_dir}: the int8 backend needs a fast tokenizer; "
                "set ARCHIVIST_EMBEDDING_BACKEND=torch for this model."
            )
        self.tokenizer_json = (model_dir / "tokenizer.json").read_text(encoding="utf-8")
        self._tokenizer: Any = Tokenizer.from_str(self.tokenizer_json)
        self._tokenizer.no_padding()  # each text runs alone: nothing to pad
        self._tokenizer.enable_truncation(max_length=self.max_tokens)

        self.model_file, self.built = int8_model_file(model_dir, cache_dir)
        options = onnxruntime.SessionOptions()
        # One thread per call and one call per core: for texts of a few hundred tokens this does more work
        # per second than splitting each call across the cores (no barrier after every operator).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        logger.info("loading embedding model %s (onnxruntime, int8)", self.model_file)
        try:
            self._session: Any = onnxruntime.InferenceSession(
                str(self.model_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # a damaged cache file (disk full, killed mid-copy): make it again, once
            logger.warning("the cached int8 model %s could not be loaded (%s); rebuilding it", self.model_file, error)
            self.model_file.unlink(missing_ok=True)
            self.model_file, self.built = int8_model_file(model_dir, cache_dir)
            self._session = onnxruntime.InferenceSession(
                str(self.model_file), options, providers=["CPUExecutionProvider"]
            )
        self.workers = threads or cpu_count()
        # Two pools, each made on first use by a thread of its kind, so its threads share that thread's CPU
        # priority: indexing's run at low priority, a question's at the page's. One pool made by the
        # indexing thread would run questions at low priority too (threads inherit their creator's nice).
        self._pools: dict[bool, ThreadPoolExecutor] = {}  # by rag.index.priority.is_background()
        self._pool_lock = threading.Lock()

    def close(self) -> None:
        """Shut the thread pools down (after the calls in flight); the next encode makes new ones."""
        with self._pool_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True)

    def encode(self, texts: list[str], group_same_length: bool = False) -> Vectors:
        """Each text runs alone by default: the int8 model quantises activations with one scale per call,
        so a text's vector would otherwise depend on what it was batched with. With `group_same_length`,
        texts of exactly the same token count run together (nothing to pad, vectors within ~0.05 per
        component of running alone): for many short texts, like single words, that would each pay a call."""
        # sentence-transformers strips each text before tokenising; so must we, to get the same tokens.
        encodings = self._tokenizer.encode_batch([text.strip() for text in texts])
        by_length: dict[int, list[int]] = {}
        for i, encoding in enumerate(encodings):
            by_length.setdefault(len(encoding.ids) if group_same_length else -i - 1, []).append(i)
        # Longest first, so no core is left with a long text at the end while the others idle.
        groups = [members[start : start + SAME_LENGTH_BATCH]
                  for _, members in sorted(by_length.items(), key=lambda item: -len(encodings[item[1][0]].ids))
                  for start in range(0, len(members), SAME_LENGTH_BATCH)]
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)

        def run(group: list[int]) -> Vectors:
            return self._run([encodings[i].ids for i in group])

        if self.workers == 1 or len(groups) == 1:
            for group in groups:
                result[group] = run(group)
            return result
        background = is_background()
        with self._pool_lock:
            pool = self._pools.get(background)
            if pool is None:
                prefix = "archivist-embed-background" if background else "archivist-embed"
                pool = self._pools[background] = ThreadPoolExecutor(self.workers, thread_name_prefix=prefix)
        for group, vectors in zip(groups, pool.map(run, groups), strict=True):
            result[group] = vectors
        return result

    def _run(self, ids: list[list[int]]) -> Vectors:
        """One model call over texts of the same token count."""
        tokens = np.asarray(ids, dtype=np.int64)
        (vectors,) = self._session.run(None, {"input_ids": tokens, "attention_mask": np.ones_like(tokens)})
        return np.asarray(vectors, dtype=np.float32)


def _check_mean_pooled(model_dir: Path) -> None:
    """The int8 export bakes in mean pooling and normalisation; refuse models that pool otherwise."""
    modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    kinds = [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules]
    pooling = next((module for module in modules if str(module.get("type", "")).endswith("Pooling")), None)
    pooling_config = read_json(model_dir / str(pooling.get("path", "")) / "config.json") if pooling else {}
    modes = {key for key, value in pooling_config.items() if key.startswith("pooling_mode_") and value is True}
    mean_only = modes == {"pooling_mode_mean_tokens"}
    if not (kinds[:2] == ["Transformer", "Pooling"] and set(kinds[2:]) <= {"Normalize"} and mean_only):
        raise ConfigError(
            f"The model in {model_dir} is not a mean-pooled transformer ({', '.join(kinds)}); the int8 backend "
            "supports only those: set ARCHIVIST_EMBEDDING_BACKEND=torch."
        )


FINGERPRINT_SAMPLE = 1 << 20  # bytes read from each end of the weights (a safetensors header lists every tensor)


def _fingerprint(model_dir: Path) -> str:
    """Names a cached int8 file after what it was made from: the recipe, the model's configuration and
    tokenizer (by content) and its weights (by size and their first and last MiB, to avoid reading 90 MB on
    every load). Not by path or time: every fresh install of the same model, in any clone, shares one file."""
    digest = hashlib.sha256(INT8_RECIPE.encode())
    for name in ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json"):
        path = model_dir / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = model_dir / name
        if path.is_file():
            size = path.stat().st_size
            with path.open("rb") as weights:
                head = weights.read(FINGERPRINT_SAMPLE)
                weights.seek(max(0, size - FINGERPRINT_SAMPLE))
                tail = weights.read(FINGERPRINT_SAMPLE)
            digest.update(f"{name}\0{size}\0".encode() + head + tail)
    return digest.hexdigest()[:16]


def int8_model_file(model_dir: Path, cache_dir: Path) -> tuple[Path, bool]:
    """The int8 ONNX file for this model, made now if the cache lacks it; and whether it was made now."""
    base = model_dir.name if model_dir.name != "model" else PACKAGED_MODEL_NAME
    target = cache_dir / f"{base}-{INT8_RECIPE}-{_fingerprint(model_dir)}.onnx"
    if target.is_file():
        return target, False
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"Cannot create the model cache folder {cache_dir} ({error.strerror or error}): "
            "point ARCHIVIST_EMBEDDING_CACHE_DIR at a writable folder."
        ) from None
    logger.warning("preparing the int8 embedding model once for this machine (about half a minute): %s", target)
    started = time.perf_counter()
    _build_in_child(model_dir, target)
    logger.info("int8 embedding model ready in %.1f s", time.perf_counter() - started)
    return target, True


def _build_in_child(model_dir: Path, target: Path) -> None:
    """Build the int8 file in a child process (`python -m rag.index.onnx_runner build-int8`), not in this one.

    The export runs torch's tracer and ONNX Runtime's optimiser, pure-Python work that holds the GIL for tens
    of seconds: in the page's server process that froze the page itself (a first visit during a first start
    timed out). A child also hands back the ~1 GB torch and the exporters take once it exits."""
    command = [sys.executable, "-m", "rag.index.onnx_runner", "build-int8", str(model_dir), str(target)]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    if result.returncode == 0 and target.is_file():
        return
    said = [line for line in result.stderr.strip().splitlines() if line.strip()]
    if result.returncode == BUILD_REFUSED and said:
        raise ConfigError(said[-1])  # a message written for a person (see main below)
    logger.error("building the int8 model failed (exit %s):\n%s", result.returncode, result.stderr[-4000:])
    raise ConfigError(
        f"Preparing the int8 embedding model failed (exit {result.returncode}): {said[-1] if said else 'no output'}. "
        "Set ARCHIVIST_EMBEDDING_BACKEND=torch to run without it."
    )


def build_int8_model(model_dir: Path, target: Path) -> None:
    """Export the model (with mean pooling and normalisation) to ONNX, fuse it, quantise it to int8.

    Works in a scratch folder beside `target` and renames the result into place, so two processes building
    at once, or one killed midway, never leave a half-written file under the final name."""
    try:
        import onnx
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from transformers import AutoModel
    except ImportError as error:
        raise ConfigError(
            f"Preparing the int8 embedding model needs {error.name}: run `make install`, "
            "or set ARCHIVIST_EMBEDDING_BACKEND=torch."
        ) from None

    class MeanPooled(torch.nn.Module):
        """The transformer plus sentence-transformers' mean pooling and normalisation, as one graph."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    work = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        # The exporters chatter on stdout and stderr and warn freely; none of it is for the user (and a
        # benchmark's stdout carries JSON).
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # Eager attention exports as plain matrix products and a softmax, which ONNX Runtime's fuser
            # recognises as one Attention node.
            model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")
            example = torch.ones((2, 8), dtype=torch.long)
            exported = work / "fp32.onnx"
            torch.onnx.export(
                MeanPooled(model.eval()),
                (example, example),
                str(exported),
                input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,  # the TorchScript exporter: no onnxscript needed, and fast
            )
            config = read_json(model_dir / "config.json")
            source = _fused(exported, config)
            quantized = work / "int8.onnx"
            quantize_dynamic(
                source,
                quantized,
                weight_type=QuantType.QInt8,
                per_channel=True,  # per-tensor weights lose too much: cosine to fp32 fell to 0.94
                op_types_to_quantize=["MatMul", "Attention"],  # not the embedding table (Gather)
                nodes_to_exclude=_sensitive_products(onnx.load(str(source)), int(config.get("num_hidden_layers", 0))),
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        os.replace(quantized, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sensitive_products(model: Any, layers: int) -> list[str]:
    """The feed-forward output projections of the first half of the layers: their inputs (GELU outputs)
    carry the outliers that per-call int8 scaling handles worst. Kept in fp32 they cost ~5% of the speed
    and lift the mean cosine to fp32 from 0.992 to 0.995 (SciFact chunks)."""
    nodes = list(model.graph.node)
    gelu = {output for node in nodes if node.op_type in ("Gelu", "BiasGelu", "FastGelu") for output in node.output}
    projections = [node.name for node in nodes if node.op_type == "MatMul" and node.input[0] in gelu]
    return projections[: layers // 2]


def _fused(exported: Path, config: dict[str, Any]) -> Path:
    """Fuse attention, layer norms and GELU with ONNX Runtime's transformer optimiser (BERT-like models)."""
    if config.get("model_type") != "bert":
        return exported
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(exported),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
        opt_level=1,
    )
    fused = exported.with_name("fused.onnx")
    optimized.save_model_to_file(str(fused))
    return fused


BUILD_REFUSED = 2  # the child's exit status when it printed a ConfigError's message as its last line


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rag.index.onnx_runner build-int8 MODEL_DIR TARGET`: what _build_in_child runs.
    `python -m rag.index.onnx_runner prepare`: load the configured model once, making its int8 copy if the cache lacks
    it (`make test` runs it first, so no test's server builds the model while a browser waits on it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args == ["prepare"]:
            from rag.factory import make_embedder
            from rag.settings import load_settings

            embedder = make_embedder(load_settings())
            print(f"embedding model ready: {embedder.name}")
            return 0
        if len(args) != 3 or args[0] != "build-int8":
            print("usage: python -m rag.index.onnx_runner prepare | build-int8 MODEL_DIR TARGET", file=sys.stderr)
            return 64
        build_int8_model(Path(args[1]), Path(args[2]))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return BUILD_REFUSED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

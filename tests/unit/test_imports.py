"""Lazy loading, proven in fresh interpreters: nothing is imported before it is needed.

Every test runs its code in a new ``python`` process, since the test process itself
has long imported every framework.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "tensorflow", "jax", "ml_dtypes", "array_api_compat"]


def run_fresh(code: str) -> Any:
    """Run ``code`` in a fresh interpreter and return the JSON it prints last."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def needs(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")


def test_import_and_numpy_conversions_import_no_framework() -> None:
    loaded = run_fresh(
        f"""
        import json, sys
        import numpy as np
        import interop
        after_import = [m for m in {HEAVY!r} if m in sys.modules]
        a = np.arange(6.0).reshape(2, 3)
        assert interop.to_numpy(a) is a
        interop.to_numpy(a, copy=True, dtype=np.float32)
        interop.to_numpy([1, 2, 3])
        interop.to_numpy([[1.0], [2.0]], dtype=np.float32)
        interop.to_numpy(np.float32(1.0))
        interop.to_numpy(3.5)
        interop.to_numpy(memoryview(bytearray(b"ab")))
        interop.explain(a)
        interop.framework_of(a)
        interop.backends()
        try:
            interop.to_numpy({{"a": 1}})
        except interop.UnsupportedTypeError as exc:
            message = str(exc)
        print(json.dumps({{
            "after_import": after_import,
            "after_use": [m for m in {HEAVY!r} if m in sys.modules],
            "message": message,
        }}))
        """
    )
    assert loaded["after_import"] == []
    assert loaded["after_use"] == []
    assert "not imported, so not tried: torch, tensorflow, jax" in loaded["message"]


def test_import_pays_for_no_generated_classes() -> None:
    # dataclasses (generating a class's methods costs milliseconds) and importlib.abc
    # are not imported by `import interop`; trees of dataclasses still walk once the
    # user's code has imported the module.
    state = run_fresh(
        """
        import json, sys
        import numpy as np
        before = set(sys.modules)
        import interop
        added = sorted(set(sys.modules) - before)
        tree = interop.to_numpy_tree({"a": [np.float32(1)]})
        after_tree = "dataclasses" in sys.modules
        import dataclasses

        @dataclasses.dataclass
        class Box:
            value: object

        out = interop.to_numpy_tree(Box(np.float32(2)))
        print(json.dumps({
            "costly": [m for m in ("dataclasses", "importlib.abc") if m in added],
            "after_tree": after_tree,
            "walked": type(out).__name__ == "Box" and type(out.value).__name__ == "ndarray",
        }))
        """
    )
    assert state == {"costly": [], "after_tree": False, "walked": True}


def test_trees_iterators_and_files_are_imported_on_first_use() -> None:
    # `import interop` loads the core (to_numpy, explain, convert); the functions over
    # trees, iterators and files load their modules when first named, and every
    # public name is still listed by dir() and reachable from the package.
    state = run_fresh(
        """
        import json, sys
        import numpy as np
        import interop
        later = ["interop._tree", "interop._function", "interop._iter",
                 "interop._structures", "interop._io"]
        at_import = [m for m in later if m in sys.modules]
        listed = sorted(set(interop.__all__) - set(dir(interop)))
        tree = interop.to_numpy_tree({"a": np.arange(2.0)})
        after_tree = [m for m in later if m in sys.modules]
        from interop import numpy_function, save
        missing = [n for n in interop.__all__ if getattr(interop, n, None) is None]
        print(json.dumps({
            "at_import": at_import,
            "unlisted": listed,
            "tree": type(tree["a"]).__name__,
            "after_tree": after_tree,
            "same": numpy_function is sys.modules["interop._function"].numpy_function
            and save is sys.modules["interop._io"].save,
            "missing": missing,
        }))
        """
    )
    assert state == {
        "at_import": [],
        "unlisted": [],
        "tree": "ndarray",
        "after_tree": ["interop._tree"],
        "same": True,
        "missing": [],
    }


def test_using_one_framework_imports_no_other() -> None:
    # Also: ml_dtypes is imported only once a nonstandard dtype (bfloat16) is met.
    needs("torch", "ml_dtypes")
    state = run_fresh(
        f"""
        import json, sys
        import torch
        import interop
        out = interop.to_numpy(torch.ones(2, 3, requires_grad=True))
        modules = [m for m in {HEAVY!r} if m in sys.modules]
        special = interop.to_numpy(torch.ones(2, dtype=torch.bfloat16))
        print(json.dumps({{
            "values": out.tolist(),
            "loaded": {{b.name: b.loaded for b in interop.backends()}},
            "modules": modules,
            "bfloat16": [str(special.dtype), "ml_dtypes" in sys.modules],
        }}))
        """
    )
    assert state["values"] == [[1.0] * 3] * 2
    assert state["loaded"]["torch"] is True
    assert state["loaded"]["tensorflow"] is False and state["loaded"]["jax"] is False
    assert state["modules"] == ["torch"]
    assert state["bfloat16"] == ["bfloat16", True]


def test_backends_report_nothing_loaded_before_the_first_conversion() -> None:
    state = run_fresh(
        """
        import json
        import interop
        print(json.dumps([[b.name, b.loaded, b.generic] for b in interop.backends()]))
        """
    )
    frameworks = [name for name, _, generic in state if not generic]
    assert frameworks[:4] == ["numpy", "torch", "tensorflow", "jax"]
    assert [name for name, loaded, generic in state if not generic and loaded] == []


def test_array_api_compat_is_imported_only_for_array_api_objects() -> None:
    needs("array_api_strict")
    state = run_fresh(
        """
        import json, sys
        import array_api_strict as xp
        import interop
        before = "array_api_compat" in sys.modules
        out = interop.to_numpy(xp.asarray([1.0, 2.0]))
        print(json.dumps([before, "array_api_compat" in sys.modules, out.tolist()]))
        """
    )
    assert state == [False, True, [1.0, 2.0]]


@pytest.mark.slow
def test_lazy_loading_is_safe_under_threads() -> None:
    # Eight threads make the first conversion of torch and JAX arrays at the same
    # moment. Each backend's load() is slowed down to widen any race window, and
    # must still run exactly once, with every thread getting the right values.
    needs("torch", "jax")
    state = run_fresh(
        """
        import json, threading, time
        import numpy as np
        import jax.numpy as jnp
        import torch
        import interop
        from interop.backends.jax import JaxBackend
        from interop.backends.torch import TorchBackend

        calls = {"torch": 0, "jax": 0}
        for cls, name in ((TorchBackend, "torch"), (JaxBackend, "jax")):
            def slow_load(self, _original=cls.load, _name=name):
                calls[_name] += 1
                time.sleep(0.2)
                _original(self)
            cls.load = slow_load

        source = np.arange(6, dtype=np.float32)
        inputs = [torch.from_numpy(source.copy()), jnp.asarray(source)]
        barrier = threading.Barrier(8)
        results, errors = [], []

        def work(i):
            try:
                barrier.wait()
                x = inputs[i % 2]
                results.append(bool(np.array_equal(interop.to_numpy(x), source)))
                results.append(interop.framework_of(inputs[(i + 1) % 2]) is not None)
            except BaseException as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps({"calls": calls, "results": results, "errors": errors}))
        """
    )
    assert state["errors"] == []
    assert state["results"] == [True] * 16
    assert state["calls"] == {"torch": 1, "jax": 1}

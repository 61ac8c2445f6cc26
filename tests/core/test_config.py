"""sciml.config: registry, typed sections, YAML loading, overrides, round trips.

Every test uses toy targets registered in a test-local Registry, never the global MODELS/DATA/TASKS.
"""
from __future__ import annotations

import dataclasses
import enum
import pathlib
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from typing import Any, Literal, Optional

import pytest
import torch
import yaml

from sciml.config import (ComponentConfig, ExperimentConfig, ExperimentSchema, Registry, SectionConfig, Target,
                          apply_overrides, config_to_dict, dump_config, load_config, parse_override, parse_section,
                          section_class)
from sciml.errors import ConfigError


# ---------------------------------------------------------------------------------------------- toy targets
@dataclasses.dataclass
class EarlyStopping:
    patience: int = 10
    mode: Literal["min", "max"] = "min"


@dataclasses.dataclass
class Window:
    size: int
    stride: int = 1


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class ToyGCN:
    def __init__(self, in_channels: int, hidden_channels: int = 16, *, dropout: float = 0.5,
                 act: Literal["relu", "gelu"] = "relu", dims: tuple[int, ...] = (8, 8)) -> None:
        self.args = dict(in_channels=in_channels, hidden_channels=hidden_channels, dropout=dropout, act=act,
                         dims=dims)


class ToyMLP:
    def __init__(self, in_channels: int, hidden_channels: int = 32, num_layers: int = 2) -> None:
        self.args = dict(in_channels=in_channels, hidden_channels=hidden_channels, num_layers=num_layers)


def community_graph(num_nodes: int = 100, seed: int = 0, p_in: float = 0.1) -> dict:
    return {"num_nodes": num_nodes, "seed": seed, "p_in": p_in}


class NodeClassification:
    def __init__(self, target: str = "y") -> None:
        self.target = target


class ToyTrainer:
    """Trainer-shaped: runtime objects first, then configurable settings."""

    def __init__(self, model: Any, task: Any, train_data: Any = None, val_data: Any = None, *,
                 max_epochs: int = 200, lr: float = 0.01, weight_decay: float = 0.0,
                 early_stopping: Optional[EarlyStopping] = None, seed: int = 0,
                 run_dir: pathlib.Path = pathlib.Path("runs/default"), deterministic: bool = False) -> None:
        self.model, self.task, self.train_data, self.val_data = model, task, train_data, val_data
        self.settings = dict(max_epochs=max_epochs, lr=lr, weight_decay=weight_decay, early_stopping=early_stopping,
                             seed=seed, run_dir=run_dir, deterministic=deterministic)


TRAINER_RUNTIME = ("model", "task", "train_data", "val_data")


@pytest.fixture()
def schema() -> ExperimentSchema:
    models, data, tasks = Registry("model"), Registry("data"), Registry("task")
    models.register("gcn", ToyGCN)
    models.register("mlp", ToyMLP)
    data.register("community_graph", community_graph)
    tasks.register("node_classification", NodeClassification)
    return ExperimentSchema(model=models, data=data, task=tasks,
                            trainer=Target(ToyTrainer, runtime=TRAINER_RUNTIME))


EXAMPLE = {
    "model": {"name": "gcn", "in_channels": 8, "hidden_channels": 64, "dropout": 0.5},
    "data": {"name": "community_graph", "num_nodes": 600, "seed": 0},
    "task": {"name": "node_classification"},
    "trainer": {"max_epochs": 200, "lr": 0.01, "weight_decay": 5.0e-4, "early_stopping": {"patience": 20},
                "seed": 0, "run_dir": "runs/demo"},
}


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- registry
def test_registry_decorator_lookup_and_duplicates():
    reg = Registry("model")

    @reg.register("toy")
    class Toy:
        pass

    assert reg.get("toy") is Toy and "toy" in reg and reg.names() == ["toy"] and len(reg) == 1
    reg.register("toy", Toy)  # the same object again is harmless
    with pytest.raises(ValueError, match="already registered"):
        reg.register("toy", ToyMLP)
    with pytest.raises(ValueError, match="already registered"):
        reg.register_lazy("toy", "somewhere.else:Toy")
    with pytest.raises(ValueError, match="package.module:Attribute"):
        reg.register_lazy("other", "no_colon_here")
    with pytest.raises(ValueError, match="non-empty"):
        reg.register("", Toy)


def test_registry_unknown_name_suggests_close_matches():
    reg = Registry("model")
    for name in ("gcn", "gat", "dagnn"):
        reg.register(name, ToyMLP)
    with pytest.raises(ConfigError) as info:
        reg.get("gnc", key="model.name")
    msg = str(info.value)
    assert "model.name" in msg and "unknown model 'gnc'" in msg and "did you mean 'gcn'" in msg
    assert "dagnn, gat, gcn" in msg  # the full list of registered names
    assert info.value.key_path == "model.name"


@pytest.fixture()
def lazy_module(tmp_path, monkeypatch):
    """A fresh importable module, never imported before; its source may register into the test registry."""
    name = f"sciml_lazy_toy_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("model")
    monkeypatch.setitem(sys.modules, "sciml_test_registry_holder", type(sys)("sciml_test_registry_holder"))
    sys.modules["sciml_test_registry_holder"].REG = registry

    def make(source: str) -> str:
        write(tmp_path / f"{name}.py", source)
        return name

    yield registry, make
    sys.modules.pop(name, None)


def test_lazy_registration_imports_only_on_lookup(lazy_module):
    reg, make = lazy_module
    module = make("""
        class Model:
            def __init__(self, width: int = 4):
                self.width = width
    """)
    reg.register_lazy("lazy", f"{module}:Model")
    assert "lazy" in reg and reg.names() == ["lazy"] and not reg.is_loaded("lazy")
    assert module not in sys.modules
    cls = reg.get("lazy")
    assert module in sys.modules and cls.__name__ == "Model" and reg.is_loaded("lazy")
    assert reg.get("lazy") is cls


def test_lazy_entry_whose_module_registers_itself(lazy_module):
    reg, make = lazy_module
    module = make("""
        import sys
        REG = sys.modules["sciml_test_registry_holder"].REG

        @REG.register("lazy")
        class Model:
            pass
    """)
    reg.register_lazy("lazy", f"{module}:Model")
    assert reg.get("lazy") is sys.modules[module].Model


def test_lazy_import_failures_name_the_entry(lazy_module):
    reg, make = lazy_module
    module = make("X = 1\n")
    reg.register_lazy("missing_attr", f"{module}:Model")
    reg.register_lazy("missing_module", "sciml_no_such_module_anywhere:Model")
    with pytest.raises(ImportError, match=f"'missing_attr' is registered as {module}:Model.*no attribute 'Model'"):
        reg.get("missing_attr")
    with pytest.raises(ImportError, match="'missing_module' is registered as sciml_no_such_module_anywhere:Model"):
        reg.get("missing_module")


def test_import_sciml_config_imports_no_model_code(tmp_path):
    code = ("import sys, sciml.config; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torch_geometric') "
            "or m.startswith(('sciml.gnn', 'sciml.operators', 'sciml.datasets', 'sciml.train'))))")
    # Run from an empty directory: the checkout root on sys.path could shadow installed packages (`-P` needs 3.11).
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------- type rules
class Typed:
    def __init__(self, *, i: int = 0, f: float = 0.0, b: bool = False, s: str = "", opt: Optional[int] = None,
                 implicit_opt: int = None, union: int | str = 0, num: float | int = 0.0,
                 lit: Literal["sum", "mean", "max"] = "sum", ints: list[int] = (), tup: tuple[int, ...] = (),
                 pair: tuple[int, str] = (0, "a"), mapping: dict[str, float] = None, es: EarlyStopping = None,
                 window: Optional[Window] = None, anything: Any = None, path: pathlib.Path = pathlib.Path("."),
                 color: Color = Color.RED, ilist: int | list[int] = 0,
                 es_or_dict: EarlyStopping | dict[str, Any] | None = None) -> None:
        pass


def typed_section(values: dict) -> SectionConfig:
    return parse_section(Target(Typed), values, path="typed")


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("i", 3, 3),
    ("f", 1e-3, 1e-3),
    ("f", 2, 2.0),  # ints are accepted as floats (and converted)
    ("b", True, True),
    ("s", "text", "text"),
    ("opt", None, None),
    ("opt", 4, 4),
    ("implicit_opt", None, None),  # `x: int = None` means Optional[int]
    ("union", 3, 3),
    ("union", "three", "three"),
    ("num", 3, 3),  # the member that fits without conversion wins: stays int
    ("num", 3.5, 3.5),
    ("lit", "mean", "mean"),
    ("ints", [1, 2], [1, 2]),
    ("tup", [1, 2, 3], (1, 2, 3)),
    ("pair", [1, "x"], (1, "x")),
    ("mapping", {"a": 1, "b": 0.5}, {"a": 1.0, "b": 0.5}),
    ("es", {"patience": 3}, EarlyStopping(patience=3)),
    ("window", {"size": 4}, Window(size=4, stride=1)),
    ("window", None, None),
    ("anything", {"x": [1, "y"]}, {"x": [1, "y"]}),
    ("path", "runs/a", pathlib.Path("runs/a")),
    ("color", "blue", Color.BLUE),
    ("ilist", 2, 2),
    ("ilist", [2, 3], [2, 3]),
    ("es_or_dict", {"patience": 1}, EarlyStopping(patience=1)),
])
def test_type_rules_accept(key, value, expected):
    got = getattr(typed_section({key: value}), key)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("key", "value", "fragments"), [
    ("i", True, ["typed.i", "expected int", "bool True"]),
    ("i", 2.0, ["typed.i", "expected int", "float 2.0"]),
    ("i", "3", ["typed.i", "expected int", "str '3'"]),
    ("f", True, ["typed.f", "expected float", "bool True"]),
    ("f", "fast", ["typed.f", "expected float", "str 'fast'"]),
    ("b", 1, ["typed.b", "expected bool", "int 1"]),
    ("b", "true", ["typed.b", "expected bool", "str 'true'"]),
    ("b", "yes", ["typed.b", "expected bool", "str 'yes'"]),
    ("s", 1, ["typed.s", "expected str", "int 1", "quote it"]),
    ("s", None, ["typed.s", "expected str", "NoneType None"]),
    ("opt", "x", ["typed.opt", "expected int | null", "str 'x'"]),
    ("union", 1.5, ["typed.union", "expected int | str", "float 1.5"]),
    ("lit", "mena", ["typed.lit", "expected one of 'sum', 'mean', 'max'", "str 'mena'", "did you mean 'mean'"]),
    ("lit", 1, ["typed.lit", "expected one of", "int 1"]),
    ("ints", [1, "a"], ["typed.ints[1]", "expected int", "str 'a'"]),
    ("ints", "12", ["typed.ints", "expected list[int]", "str '12'"]),
    ("tup", [1, 2.5], ["typed.tup[1]", "expected int", "float 2.5"]),
    ("pair", [1, "x", 2], ["typed.pair", "exactly 2 items"]),
    ("mapping", {1: 2.0}, ["typed.mapping.1 (the key)", "expected str", "int 1"]),
    ("mapping", {"a": "b"}, ["typed.mapping.a", "expected float", "str 'b'"]),
    ("mapping", [1], ["typed.mapping", "expected dict[str, float]", "list [1]"]),
    ("es", {"patiance": 3},
     ["typed.es.patiance", "unknown key", "did you mean 'patience'", "Valid keys: patience, mode"]),
    ("es", {"mode": "up"}, ["typed.es.mode", "expected one of 'min', 'max'", "str 'up'"]),
    ("es", 5, ["typed.es", "EarlyStopping", "int 5"]),
    ("window", {"stride": 2}, ["typed.window", "missing required key", "typed.window.size"]),
    ("window", {"size": "big"}, ["typed.window.size", "expected int", "str 'big'"]),
    ("path", 3, ["typed.path", "expected Path", "int 3"]),
    ("color", "green", ["typed.color", "expected Color", "str 'green'", "'red', 'blue'"]),
    ("ilist", [1, "a"], ["typed.ilist[1]", "expected int", "str 'a'"]),  # the one list-shaped member explains
    ("ilist", "a", ["typed.ilist", "expected int | list[int]", "str 'a'"]),
    # The dataclass member decides for a mapping: a misspelt key does not slip through as a plain dict.
    ("es_or_dict", {"patiance": 1}, ["typed.es_or_dict.patiance", "unknown key", "did you mean 'patience'"]),
])
def test_type_rules_reject_naming_key_value_and_expectation(key, value, fragments):
    with pytest.raises(ConfigError) as info:
        typed_section({key: value})
    for fragment in fragments:
        assert fragment in str(info.value)


def test_mutable_defaults_are_not_shared():
    def target(dims: list[int] = [1, 2]):  # noqa: B006 -- the point of the test
        return dims

    first = parse_section(Target(target), {}, path="model")
    second = parse_section(Target(target), {}, path="model")
    first.dims.append(3)
    assert second.dims == [1, 2] and target.__defaults__ == ([1, 2],)


def test_registry_section_name_must_be_a_registered_string(schema):
    with pytest.raises(ConfigError, match=r"model.name: unknown model 3"):
        load_config({**EXAMPLE, "model": {"name": 3}}, schema=schema)
    with pytest.raises(ConfigError, match=r"model: expected a mapping with a 'name' key"):
        load_config({**EXAMPLE, "model": "gcn"}, schema=schema)


def test_section_dataclass_carries_hints_and_defaults():
    cls = section_class(ToyGCN, name="gcn", kind="model")
    assert dataclasses.is_dataclass(cls) and issubclass(cls, ComponentConfig)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert list(fields) == ["name", "in_channels", "hidden_channels", "dropout", "act", "dims"]
    assert fields["in_channels"].default is dataclasses.MISSING
    assert fields["dropout"].default == 0.5 and fields["dims"].default == (8, 8)
    hints = {k: v for k, v in vars(cls)["__annotations__"].items()}
    assert hints["hidden_channels"] is int and hints["dropout"] is float
    assert section_class(ToyGCN, name="gcn", kind="model") is cls  # cached: configs compare equal
    assert cls.target_of() is ToyGCN
    # Constructing directly validates too.
    with pytest.raises(ConfigError, match="model.dropout: expected float"):
        cls(in_channels=3, dropout="high")


def test_runtime_positional_only_and_variadic_parameters_are_not_config_keys():
    def builder(data, /, graph, *args, width: int = 2, **kwargs):
        return data, graph, args, width, kwargs

    cls = section_class(builder, runtime=("graph",), kind="data")
    assert [f.name for f in dataclasses.fields(cls)] == ["width"]
    section = parse_section(Target(builder, runtime=("graph",)), {"width": 5}, path="data")
    assert section.build("D", graph="G") == ("D", "G", (), 5, {})
    with pytest.raises(ConfigError, match=r"data\.graph: unknown key 'graph'.*Valid keys: width"):
        parse_section(Target(builder, runtime=("graph",)), {"graph": 1}, path="data")


def test_parameter_with_unwritable_default_is_hidden_with_a_reason():
    def model(width: int = 2, act=print):
        return width, act

    section = parse_section(Target(model), {"width": 3}, path="model")
    assert section.build() == (3, print) and section.build(act=len) == (3, len)
    with pytest.raises(ConfigError, match=r"model\.act: cannot be set in a config.*cannot be written as YAML"):
        parse_section(Target(model), {"act": "gelu"}, path="model")


def test_bad_target_signatures_fail_at_schema_build():
    def uses_name(name: str = "x"):
        pass

    def wrong_default(width: int = 0.5):
        pass

    def unresolvable(x: UndefinedType = 1, data: UndefinedType = None):  # noqa: F821 -- the point of the test
        pass

    with pytest.raises(TypeError, match="cannot resolve the type hint 'UndefinedType' of parameter 'x'"):
        section_class(unresolvable, runtime=("data",), kind="model")
    # Runtime-supplied parameters are never inspected, so their hints may be unresolvable.
    assert [f.name for f in dataclasses.fields(section_class(unresolvable, runtime=("x", "data")))] == []
    with pytest.raises(TypeError, match="'name' clashes with a reserved"):
        section_class(uses_name, name="n", kind="model")
    with pytest.raises(TypeError, match="default of parameter 'width' does not match"):
        section_class(wrong_default, kind="model")


def test_build_and_kwargs(schema):
    cfg = load_config(EXAMPLE, schema=schema)
    model = cfg.model.build()
    assert isinstance(model, ToyGCN)
    assert model.args == {"in_channels": 8, "hidden_channels": 64, "dropout": 0.5, "act": "relu", "dims": (8, 8)}
    assert cfg.data.build() == {"num_nodes": 600, "seed": 0, "p_in": 0.1}
    assert cfg.task.build().target == "y"
    trainer = cfg.trainer.build(model=model, task="T", train_data=[1], val_data=[2])
    assert trainer.model is model and trainer.settings["early_stopping"] == EarlyStopping(patience=20)
    assert trainer.settings["run_dir"] == pathlib.Path("runs/demo")
    kwargs = cfg.trainer.kwargs()
    kwargs["early_stopping"].patience = 99  # a copy: the config is unchanged
    assert cfg.trainer.early_stopping.patience == 20
    with pytest.raises(TypeError, match="lr come"):
        cfg.trainer.build(model=model, task=None, lr=1.0)


def test_torch_module_target():
    class TinyNet(torch.nn.Module):
        def __init__(self, in_channels: int, out_channels: int, *, bias: bool = True,
                     act: str | Callable | None = "relu", init: torch.Tensor | None = None) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(in_channels, out_channels, bias=bias)

    models = Registry("model")
    models.register("tiny", TinyNet)
    schema = ExperimentSchema(model=models, data=None, task=None, trainer=None)
    cfg = load_config({"model": {"name": "tiny", "in_channels": 3, "out_channels": 2, "bias": False}}, schema=schema)
    net = cfg.model.build()
    assert isinstance(net, TinyNet) and net.lin.weight.shape == (2, 3) and net.lin.bias is None
    with pytest.raises(ConfigError, match=r"model.init: expected Tensor \| null, got list"):
        load_config({"model": {"name": "tiny", "in_channels": 3, "out_channels": 2, "init": [1.0]}}, schema=schema)


def test_configs_pickle_and_deepcopy(schema):
    import copy
    import pickle

    cfg = load_config(EXAMPLE, schema=schema)
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert copy.deepcopy(cfg) == cfg


# ---------------------------------------------------------------------------------------------- loading
def test_yaml_round_trip_and_equality(schema, tmp_path):
    path = write(tmp_path / "exp.yaml", """
        model: {name: gcn, in_channels: 8, hidden_channels: 64, dropout: 0.5, dims: [4, 2]}
        data:  {name: community_graph, num_nodes: 600, seed: 0}
        task:  {name: node_classification}
        trainer:
          max_epochs: 200
          lr: 1e-2            # YAML 1.1 would read this as a string
          weight_decay: 5.0e-4
          early_stopping: {patience: 20, mode: max}
          seed: 0
          run_dir: runs/demo
    """)
    cfg = load_config(path, schema=schema)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.model.name == "gcn" and cfg.model.dims == (4, 2) and cfg.trainer.lr == 0.01
    assert cfg.trainer.early_stopping == EarlyStopping(patience=20, mode="max")
    assert cfg.trainer.deterministic is False  # defaults filled in
    as_dict = config_to_dict(cfg)
    assert list(as_dict) == ["model", "data", "task", "trainer"] and list(as_dict["model"])[0] == "name"
    assert as_dict["trainer"]["run_dir"] == "runs/demo" and as_dict["model"]["dims"] == [4, 2]
    assert load_config(as_dict, schema=schema) == cfg
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(dump_config(cfg))
    assert load_config(dumped, schema=schema) == cfg
    assert yaml.safe_load(dumped.read_text()) == as_dict  # plain YAML readers see the same data


def test_strings_that_look_like_other_types_round_trip(tmp_path):
    def target(a: str = "", b: str = "", c: str = "", d: str = "") -> None:
        pass

    schema = ExperimentSchema(model=Target(target), data=None, task=None, trainer=None)
    cfg = load_config({"model": {"a": "1e-3", "b": "no", "c": "2024-01-01", "d": "true"}}, schema=schema)
    text = dump_config(cfg)
    assert load_config(yaml.safe_load(text), schema=schema) == cfg
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert load_config(path, schema=schema) == cfg


def test_yaml_loader_does_not_change_pyyaml_globally():
    import sciml.config  # noqa: F401 -- the loader class is built at import

    assert yaml.safe_load("x: 1e-3\ny: yes") == {"x": "1e-3", "y": True}


def test_unknown_keys_name_the_path_and_suggest(schema):
    bad = {**EXAMPLE, "model": {**EXAMPLE["model"], "hiden_channels": 3}}
    with pytest.raises(ConfigError) as info:
        load_config(bad, schema=schema)
    msg = str(info.value)
    assert msg.startswith("model.hiden_channels: unknown key 'hiden_channels' for model 'gcn'")
    assert "did you mean 'hidden_channels'" in msg and "Valid keys: name, in_channels, hidden_channels" in msg
    with pytest.raises(ConfigError, match=r"trainr: unknown key 'trainr'.*did you mean 'trainer'"):
        load_config({**EXAMPLE, "trainr": {}}, schema=schema)
    with pytest.raises(ConfigError, match=r"trainer.early_stopping.patiance: unknown key.*did you mean 'patience'"):
        load_config({**EXAMPLE, "trainer": {"early_stopping": {"patiance": 1}}}, schema=schema)


def test_missing_required_keys_and_sections(schema):
    with pytest.raises(ConfigError, match=r"model: missing required key\(s\) 'model.in_channels' for model 'gcn'"):
        load_config({**EXAMPLE, "model": {"name": "gcn"}}, schema=schema)
    with pytest.raises(ConfigError, match=r"model: missing required key 'name'.*gcn, mlp"):
        load_config({**EXAMPLE, "model": {"in_channels": 3}}, schema=schema)
    no_data = {k: v for k, v in EXAMPLE.items() if k != "data"}
    with pytest.raises(ConfigError, match=r"data: missing section.*community_graph"):
        load_config(no_data, schema=schema)
    with pytest.raises(ConfigError, match=r"trainer\.lr: expected float, got str 'fast'"):
        load_config({**EXAMPLE, "trainer": {"lr": "fast"}}, schema=schema)
    # A fixed-target section with no required parameters may be left out: all defaults.
    no_trainer = {k: v for k, v in EXAMPLE.items() if k != "trainer"}
    assert load_config(no_trainer, schema=schema).trainer.max_epochs == 200


def test_sections_the_schema_does_not_use(schema):
    small = dataclasses.replace(schema, data=None, task=None)
    cfg = load_config({"model": EXAMPLE["model"]}, schema=small)
    assert cfg.data is None and cfg.task is None and "data" not in config_to_dict(cfg)
    with pytest.raises(ConfigError, match="data: cannot be set in a config: this experiment schema does not use"):
        load_config({"model": EXAMPLE["model"], "data": EXAMPLE["data"]}, schema=small)


def test_file_errors_name_the_file(tmp_path, schema):
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(tmp_path / "nope.yaml", schema=schema)
    assert "nope.yaml" in str(info.value)

    broken = write(tmp_path / "broken.yaml", """
        model:
          name: gcn
          in_channels: [1, 2
        trainer: {}
    """)
    with pytest.raises(ConfigError) as info:
        load_config(broken, schema=schema)
    msg = str(info.value)
    assert "broken.yaml" in msg and "invalid YAML" in msg
    assert "broken.yaml:5:" in msg and "(line 5)" in msg  # where PyYAML detects the unclosed list

    tab = write(tmp_path / "tab.yaml", "model:\n\tname: gcn\n")
    with pytest.raises(ConfigError, match=r"tab.yaml:2:1: invalid YAML"):
        load_config(tab, schema=schema)

    duplicate = write(tmp_path / "dup.yaml", "trainer:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:3:3: .*duplicate key 'lr' \(first defined on line 2\)"):
        load_config(duplicate, schema=schema)

    listing = write(tmp_path / "list.yaml", "- model\n- trainer\n")
    with pytest.raises(ConfigError, match=r"list.yaml' must hold a mapping .* got list"):
        load_config(listing, schema=schema)

    empty = write(tmp_path / "empty.yaml", "# nothing\n")
    with pytest.raises(ConfigError, match="empty.yaml' is empty"):
        load_config(empty, schema=schema)

    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path, schema=schema)  # a directory


def test_errors_from_a_file_name_the_file(tmp_path, schema):
    path = write(tmp_path / "exp.yaml", yaml.safe_dump({**EXAMPLE, "trainer": {"max_epochs": "ten"}}))
    with pytest.raises(ConfigError) as info:
        load_config(path, schema=schema)
    msg = str(info.value)
    assert msg.startswith("trainer.max_epochs: expected int, got str 'ten'") and "exp.yaml" in msg
    assert info.value.key_path == "trainer.max_epochs"


# ---------------------------------------------------------------------------------------------- overrides
def test_parse_override_values_are_yaml():
    assert parse_override("trainer.lr=1e-3").value == 1e-3
    assert parse_override("trainer.lr=1e-3").path == ("trainer", "lr")
    assert parse_override("flag=true").value is True
    assert parse_override("dims=[1, 2]").value == [1, 2]
    assert parse_override("es={patience: 5}").value == {"patience": 5}
    assert parse_override("split='10'").value == "10"
    assert parse_override("name=a=b").value == "a=b"
    assert parse_override("x=").value is None and parse_override("x=null").value is None
    assert parse_override("~model.dropout").delete
    for bad, match in [("lr", "expected 'key=value'"), ("=3", "must be dotted names"),
                       ("a..b=1", "must be dotted names"), ("dims=[1, 2", "not valid YAML"),
                       ("~a=1", "deletion looks like")]:
        with pytest.raises(ConfigError, match=match):
            parse_override(bad)


def test_apply_overrides_nested_replace_delete():
    base = {"trainer": {"lr": 0.1, "early_stopping": {"patience": 3, "mode": "max"}}}
    out = apply_overrides(base, ["trainer.lr=1e-3", "trainer.new.deep=1", "trainer.early_stopping={patience: 5}",
                                 "~trainer.new"])
    assert out == {"trainer": {"lr": 1e-3, "early_stopping": {"patience": 5}}}
    assert base["trainer"]["lr"] == 0.1  # input untouched
    with pytest.raises(ConfigError, match=r"trainer.lr is a float, not a mapping"):
        apply_overrides(base, ["trainer.lr.x=1"])
    with pytest.raises(ConfigError, match="cannot delete trainer.nope, it is not set"):
        apply_overrides(base, ["~trainer.nope"])
    with pytest.raises(ConfigError, match="single string"):
        apply_overrides(base, "trainer.lr=1")


def test_overrides_are_checked_like_file_keys(schema, tmp_path):
    path = write(tmp_path / "exp.yaml", yaml.safe_dump(EXAMPLE))
    cfg = load_config(path, ["trainer.lr=1e-3", "trainer.early_stopping.mode=max", "model.dims=[1,2]",
                             "trainer.deterministic=true", "trainer.max_epochs=5", "trainer.run_dir='7'"],
                      schema=schema)
    assert cfg.trainer.lr == 1e-3 and cfg.trainer.max_epochs == 5 and cfg.trainer.deterministic is True
    assert cfg.trainer.early_stopping == EarlyStopping(patience=20, mode="max")
    assert cfg.model.dims == (1, 2) and cfg.trainer.run_dir == pathlib.Path("7")

    with pytest.raises(ConfigError) as info:
        load_config(path, ["trainer.max_epoch=5"], schema=schema)
    msg = str(info.value)
    assert msg.startswith("trainer.max_epoch: unknown key 'max_epoch'") and "did you mean 'max_epochs'" in msg
    assert "set by override 'trainer.max_epoch=5'" in msg

    with pytest.raises(ConfigError, match=r"trainer.deterministic: expected bool, got int 1 .*override"):
        load_config(path, ["trainer.deterministic=1"], schema=schema)
    with pytest.raises(ConfigError, match=r"trainer.seed: expected int, got str 'abc'"):
        load_config(path, ["trainer.seed=abc"], schema=schema)


def test_override_switches_registered_target(schema):
    # Same keys fit the new target: the section is re-validated against ToyMLP.
    base = {**EXAMPLE, "model": {"name": "gcn", "in_channels": 8, "hidden_channels": 64}}
    cfg = load_config(base, ["model.name=mlp", "model.num_layers=3"], schema=schema)
    assert type(cfg.model).target_of() is ToyMLP and cfg.model.name == "mlp"
    assert cfg.model.build().args == {"in_channels": 8, "hidden_channels": 64, "num_layers": 3}
    assert cfg != load_config(base, schema=schema)

    # A key the new target lacks is an unknown key of the new model...
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, ["model.name=mlp"], schema=schema)
    msg = str(info.value)
    assert msg.startswith("model.dropout: unknown key 'dropout' for model 'mlp'")
    assert "Valid keys: name, in_channels, hidden_channels, num_layers" in msg
    # ...which can be deleted in the same command line.
    cfg = load_config(EXAMPLE, ["model.name=mlp", "~model.dropout"], schema=schema)
    assert cfg.model.name == "mlp"
    with pytest.raises(ConfigError, match=r"model.name: unknown model 'mpl'; did you mean 'mlp'"):
        load_config(EXAMPLE, ["model.name=mpl"], schema=schema)


def test_docs_example_runs(capsys):
    docs = pathlib.Path(__file__).resolve().parents[2] / "docs" / "configs.md"
    if not docs.exists():
        pytest.skip("docs/configs.md is not next to the tests")
    text = docs.read_text(encoding="utf-8").split("## A complete example", 1)[1]
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    expected = text.split("prints\n\n```\n", 1)[1].split("```", 1)[0]
    exec(compile(code, str(docs), "exec"), {"__name__": "docs_example"})  # noqa: S102 -- our own docs
    assert capsys.readouterr().out == expected


def test_check_int_accepts_ints_from_the_minimum_and_names_owner_argument_and_value():
    from sciml.errors import ConfigError, check_int

    assert check_int(3, "steps", "Thing") == 3 and check_int(0, "seed", "Thing", minimum=0) == 0
    assert check_int(None, "cap", "Thing", allow_none=True) is None
    for bad in (0, -2, 2.0, "3", True, None):
        with pytest.raises(ConfigError) as info:
            check_int(bad, "steps", "Thing")
        assert str(info.value) == f"Thing: steps must be an integer >= 1, got {bad!r}"
    with pytest.raises(ConfigError, match=r"Thing: cap must be an integer >= 1 or None, got 0"):
        check_int(0, "cap", "Thing", allow_none=True)

"""Configuration files, discovered per model, through the installed CLI."""

from __future__ import annotations

import json
import shutil

import pytest

from ._fixtures import MODELS

EXAMPLE = MODELS / "example.onnx"


def _codes(proc, i=0):
    data = json.loads(proc.stdout)
    return {f["code"] for f in data["models"][i]["findings"]}


@pytest.fixture
def repo(tmp_path):
    """A monorepo: project a/ with pyproject.toml, project b/ with onnxdoctor.toml, c/ without config."""
    for sub in ("a/models", "b", "c"):
        (tmp_path / sub).mkdir(parents=True)
        shutil.copy(EXAMPLE, tmp_path / sub / "m.onnx")
    (tmp_path / "a" / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.onnxdoctor]\ntrt = "8.6"\nignore = ["TRT131"]\n')
    (tmp_path / "b" / "onnxdoctor.toml").write_text('trt = "10.15"\nselect = ["TRT125"]\n')
    return tmp_path


def test_discovered_per_model(run_cli, repo):
    proc = run_cli("check", repo, "--format", "json")
    data = json.loads(proc.stdout)
    by_dir = {m["path"].split("/")[-2]: m for m in data["models"]}
    assert by_dir["models"]["trt"] == "8.6" and by_dir["b"]["trt"] == "10.15" and by_dir["c"]["trt"] == "11.5"
    a_codes = {f["code"] for f in by_dir["models"]["findings"]}
    assert "TRT101" in a_codes and "TRT131" not in a_codes  # 8.6: Gelu unsupported; opset warning ignored
    assert {f["code"] for f in by_dir["b"]["findings"]} == {"TRT125"}


def test_onnxdoctor_toml_wins_over_pyproject_in_same_folder(run_cli, repo):
    (repo / "b" / "pyproject.toml").write_text('[tool.onnxdoctor]\ntrt = "8.6"\n')
    proc = run_cli("check", repo / "b" / "m.onnx", "--format", "json")
    assert json.loads(proc.stdout)["models"][0]["trt"] == "10.15"


def test_pyproject_without_section_is_skipped(run_cli, repo):
    (repo / "c" / "pyproject.toml").write_text('[project]\nname = "c"\n')
    (repo / "onnxdoctor.toml").write_text('trt = "9.3"\n')
    proc = run_cli("check", repo / "c" / "m.onnx", "--format", "json")
    assert json.loads(proc.stdout)["models"][0]["trt"] == "9.3"


def test_flags_override_config(run_cli, repo):
    proc = run_cli("check", repo / "a" / "models" / "m.onnx", "--trt", "10.15", "--ignore", "TRT102", "--format", "json")
    data = json.loads(proc.stdout)
    assert data["models"][0]["trt"] == "10.15"
    codes = _codes(proc)
    assert "TRT102" not in codes and "TRT125" in codes


def test_explicit_config_and_isolated(run_cli, repo, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text('trt = "9.3"\nselect = ["TRT101"]\n')
    proc = run_cli("check", repo / "b" / "m.onnx", "--config", other, "--format", "json")
    data = json.loads(proc.stdout)
    assert data["models"][0]["trt"] == "9.3" and _codes(proc) == {"TRT101"}
    proc = run_cli("check", repo / "b" / "m.onnx", "--isolated", "--format", "json")
    assert json.loads(proc.stdout)["models"][0]["trt"] == "11.5"


def test_per_file_ignores_and_fail_on(run_cli, repo):
    (repo / "b" / "onnxdoctor.toml").write_text(
        'trt = "10.15"\nfail-on = "warning"\nselect = ["TRT112", "TRT125"]\n[per-file-ignores]\n"m.onnx" = ["TRT125"]\n'
    )
    proc = run_cli("check", repo / "b" / "m.onnx", "--format", "json")
    assert _codes(proc) == {"TRT112"}
    assert proc.returncode == 1  # a warning fails with fail-on = "warning"
    assert run_cli("check", repo / "b" / "m.onnx", "--fail-on", "error").returncode == 0


def test_shapes_from_config(run_cli, tmp_path):
    import onnx
    import onnx.parser

    m = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 18]>
        g (float[N,3] x) => (float[N,1] y) {
          s = Shape(x)
          i = Constant<value = int64[1] {1}>()
          a = Gather<axis = 0>(s, i)
          one = Constant<value = int64[1] {2}>()
          axes = Sub(a, one)
          y = ReduceSum<keepdims = 1>(x, axes)
        }
        """
    )
    onnx.save(m, tmp_path / "m.onnx")
    proc = run_cli("check", tmp_path / "m.onnx", "--select", "TRT122", "--format", "json")
    errors = [f for f in json.loads(proc.stdout)["models"][0]["findings"] if f["severity"] == "error"]
    assert errors  # N is dynamic: axes computed at runtime
    (tmp_path / "onnxdoctor.toml").write_text('[shapes]\nx = "4x3"\n')
    proc = run_cli("check", tmp_path / "m.onnx", "--select", "TRT122", "--format", "json")
    findings = json.loads(proc.stdout)["models"][0]["findings"]
    assert [f["severity"] for f in findings] == ["warning"]  # now constant: only needs folding


@pytest.mark.parametrize(
    "content,phrase",
    [
        ('trt = "7.0"\n', "trt"),
        ('colour = "red"\n', "colour: unknown key"),
        ('fail-on = "sometimes"\n', "fail-on"),
        ('select = ["NOPE9"]\n', "NOPE9"),
        ('[fix]\natol = -1\n', "fix.atol"),
        ('[fix]\nspeed = 1\n', "fix.speed"),
        ('[shapes]\nx = "big"\n', "shapes.x"),
        ('trt = \n', "invalid TOML"),
    ],
)
def test_bad_config_is_exit_2_naming_file_and_key(run_cli, tmp_path, content, phrase):
    shutil.copy(EXAMPLE, tmp_path / "m.onnx")
    (tmp_path / "onnxdoctor.toml").write_text(content)
    proc = run_cli("check", tmp_path / "m.onnx")
    assert proc.returncode == 2, proc.stdout
    line = proc.stderr.strip()
    assert "onnxdoctor.toml" in line and phrase in line and "\n" not in line, line


def test_jobs_give_identical_results(run_cli, tmp_path):
    for i in range(6):
        shutil.copy(EXAMPLE if i % 2 else MODELS / "clean.onnx", tmp_path / f"m{i}.onnx")
    serial = run_cli("check", tmp_path, "--format", "json", "--isolated")
    parallel = run_cli("check", tmp_path, "--format", "json", "--isolated", "-j", "2")
    assert serial.returncode == parallel.returncode == 1
    assert json.loads(serial.stdout) == json.loads(parallel.stdout)


# One value per setting, as a file writes it, and as Config holds it after reading.
_FILE_VALUES = {
    "trt": ('trt = "10.15"', "10.15"),
    "precision": ('precision = "fp16"', "fp16"),
    "select": ('select = ["TRT1"]', ("TRT1",)),
    "ignore": ('ignore = "TRT115, GRF"', ("TRT115", "GRF")),
    "fail-on": ('fail-on = "warning"', "warning"),
    "per-file-ignores": ('[per-file-ignores]\n"legacy/*.onnx" = ["TRT131"]', (("legacy/*.onnx", ("TRT131",)),)),
    "shapes": ('[shapes]\nx = [4, 3]', ("x:4x3",)),
    "plugins": ('plugins = ["MyNMS_TRT"]', ("MyNMS_TRT",)),
    "fix.rules": ('[fix]\nrules = ["TRT", "GRF"]', "TRT,GRF"),
    "fix.atol": ('[fix]\natol = 1', 1.0),
    "fix.rtol": ('[fix]\nrtol = 0.5', 0.5),
    "fix.time-limit": ('[fix]\ntime-limit = 30', 30.0),
    "fix.activation-limit": ('[fix]\nactivation-limit = 512', 512.0),
}


def test_every_setting_is_one_field_read_from_the_file_and_overridden_by_a_flag(tmp_path):
    """A setting is declared once (a Config field with its key and reader): the file reads it, and
    Config.resolve, which every command calls, lets a flag of the same name replace it."""
    from dataclasses import fields

    from onnxdoctor import config

    settings = {f.metadata["key"]: f.name for f in fields(config.Config) if "key" in f.metadata}
    assert set(settings) == set(_FILE_VALUES), "add the new setting to _FILE_VALUES"
    for key, (text, held) in _FILE_VALUES.items():
        path = tmp_path / "onnxdoctor.toml"
        path.write_text(text + "\n")
        cfg = config.load(path)
        name = settings[key]
        assert getattr(cfg, name) == held, key
        flag = {tuple: ("FLAG",), str: "8.6" if name == "trt" else "fp32" if name == "precision" else "info"
                if name == "fail_on" else "strict", float: 2.0}[type(held)]
        if name == "per_file_ignores":
            continue  # not a flag: it adds to --ignore (below)
        assert getattr(cfg.resolve(**{name: flag}), name) == flag, key
        assert getattr(cfg.resolve(**{name: None}), name) == held, key  # not given: the file's value
    with pytest.raises(TypeError, match="no setting 'colour'"):
        config.DEFAULT.resolve(colour="red")


def test_per_file_ignores_add_to_the_ignore_flag(tmp_path):
    from onnxdoctor import config

    (tmp_path / "legacy").mkdir()
    (tmp_path / "onnxdoctor.toml").write_text('ignore = ["TRT115"]\n[per-file-ignores]\n"legacy/*.onnx" = ["TRT131"]\n')
    cfg = config.load(tmp_path / "onnxdoctor.toml")
    assert cfg.resolve(tmp_path / "legacy" / "m.onnx").ignore == ("TRT115", "TRT131")
    assert cfg.resolve(tmp_path / "legacy" / "m.onnx", ignore=["GRF"]).ignore == ("GRF", "TRT131")
    assert cfg.resolve(tmp_path / "m.onnx", ignore=["GRF"]).ignore == ("GRF",)


@pytest.mark.parametrize("command", ["check", "fix", "verify", "profile"])
def test_every_command_with_settings_takes_the_shared_config_options(run_cli, tmp_path, command):
    """--config names the file for every command: a bad one is exit 2 naming it, before any work."""
    shutil.copy(EXAMPLE, tmp_path / "m.onnx")
    bad = tmp_path / "bad.toml"
    bad.write_text('trt = "7.0"\n')
    extra = {"fix": ["-o", str(tmp_path / "out.onnx")], "verify": ["--fp16"]}.get(command, [])
    proc = run_cli(command, tmp_path / "m.onnx", *extra, "--config", bad)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip()
    assert "bad.toml" in line and "trt" in line and "\n" not in line, line
    assert not (tmp_path / "out.onnx").exists()

"""A project's own recipe that brings a `[toolchain]` would pip-install and run code at build time:
edgebuild refuses it unless the user trusts the project (issue 14). Built-in recipes, and project
recipes whose toolchain is identical to a built-in one, need no trust. Dry runs only: nothing here
installs anything (EDGEBUILD_HOME points at an empty folder, which must stay empty)."""

from __future__ import annotations

from conftest import REPO, ort_demo_toml, run_cli, write_demo

EVIL_TOOLCHAIN = '\n[toolchain]\nname = "helper"\npython = "3.11"\nrequirements = ["totally-harmless==1.0"]\n'


def project_with_recipe(tmp_path, recipe_text: str, recipe: str):
    toml = ort_demo_toml().replace('recipe = "onnxruntime"', f'recipe = "{recipe}"')
    project = write_demo(tmp_path / "demo", toml)
    (project / "recipes").mkdir()
    (project / "recipes" / f"{recipe}.toml").write_text(recipe_text)
    return project


def custom_recipe() -> str:
    text = (REPO / "recipes" / "onnxruntime.toml").read_text()
    return text.replace('name = "onnxruntime"', 'name = "custom"', 1) + EVIL_TOOLCHAIN


def test_project_toolchain_is_refused_without_trust(tmp_path):
    project = project_with_recipe(tmp_path, custom_recipe(), "custom")
    home = tmp_path / "home"
    for args in (["build", "-n"], ["all"], ["check"], ["toolchain", "install", "custom"]):
        result = run_cli(
            project, *args, env={"EDGEBUILD_HOME": str(home), "EDGEBUILD_TRUST_PROJECT_TOOLCHAINS": ""}
        )
        assert result.rc == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "recipes/custom.toml" in lines[0] and "--trust-project-toolchains" in lines[0]
    assert not home.exists()  # nothing was installed, nothing ran
    assert not (project / "build").exists()


def test_trust_by_flag_or_user_environment(tmp_path):
    project = project_with_recipe(tmp_path, custom_recipe(), "custom")
    home = {"EDGEBUILD_HOME": str(tmp_path / "home")}
    flag = run_cli(project, "build", "-n", "--trust-project-toolchains", env=home)
    assert flag.rc == 0, flag.stderr
    assert "would run" in flag.stdout
    user = run_cli(project, "build", "-n", env={**home, "EDGEBUILD_TRUST_PROJECT_TOOLCHAINS": "1"})
    assert user.rc == 0, user.stderr
    assert not (tmp_path / "home" / "toolchains").exists()  # a dry run installs nothing


def test_project_recipe_with_a_built_in_toolchain_needs_no_trust(tmp_path):
    """A project that overrides the built-in tflite recipe but keeps its toolchain pins asks for
    nothing new: the same environment a built-in recipe installs."""
    text = (REPO / "recipes" / "tflite.toml").read_text()
    toml = ort_demo_toml()
    toml = (
        toml[: toml.index("[targets.")]
        + '[targets.phone]\nmodel = "digits"\nrecipe = "tflite"\nprecision = "fp16"\n'
    )
    project = write_demo(tmp_path / "demo", toml)
    (project / "recipes").mkdir()
    (project / "recipes" / "tflite.toml").write_text(
        text.replace('description = "', 'description = "ours: ', 1)
    )
    result = run_cli(project, "build", "-n", env={"EDGEBUILD_HOME": str(tmp_path / "home")})
    assert result.rc == 0, result.stderr
    # the same file with one pin changed is a new toolchain: refused
    changed = text.replace("==", "==0.", 1)
    (project / "recipes" / "tflite.toml").write_text(changed)
    result = run_cli(project, "build", "-n", env={"EDGEBUILD_HOME": str(tmp_path / "home")})
    assert result.rc == 2 and "recipes/tflite.toml" in result.stderr, result.stderr

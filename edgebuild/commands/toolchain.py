"""`edgebuild toolchain list|install|path [RECIPE...]`: the isolated environments recipes run in."""

from __future__ import annotations

import json

import click

from edgebuild import cli_options as opt
from edgebuild.errors import ConfigError
from edgebuild.project import did_you_mean, load_project
from edgebuild.recipes import load_recipe, recipe_files


def _recipes_with_toolchains(args) -> dict:
    """Named recipes, else those the project's targets use (or every recipe outside a project)."""
    try:
        project = load_project(args.project)
        root, used = project.root, {t.recipe for t in project.targets.values()}
    except ConfigError:
        if args.action != "list" and not args.recipes:
            raise
        root, used = None, set()
    files = recipe_files(root)
    names = args.recipes or sorted(used or files)
    for name in names:
        if name not in files:
            raise ConfigError(
                f"unknown recipe '{name}'{did_you_mean(name, files)}; recipes: {', '.join(sorted(files))}"
            )
    recipes = {n: load_recipe(n, root) for n in names}
    if args.action == "install":
        from edgebuild.toolchain import require_trusted

        require_trusted(recipes.values(), args.trust_project_toolchains)
    return {n: r.toolchain for n, r in recipes.items() if r.toolchain}


def run(args) -> int:
    from edgebuild import toolchain

    wanted = _recipes_with_toolchains(args)
    try:
        if args.action == "list":
            installed = {e["spec_hash"]: e for e in toolchain.list_environments()}
            rows = []
            for recipe, spec in wanted.items():
                env = toolchain.lookup(spec)
                rows.append(
                    {
                        "recipe": recipe,
                        "toolchain": spec["name"],
                        "installed": env is not None,
                        "path": str(env.root) if env else str(toolchain.env_dir(spec)),
                        "python": env.versions.get("python") if env else spec.get("python"),
                    }
                )
            if args.json:
                print(json.dumps({"recipes": rows, "environments": list(installed.values())}, indent=1))
            else:
                for row in rows:
                    state = "installed" if row["installed"] else "not installed"
                    print(f"{row['recipe']:12} {row['toolchain']:12} {state:14} {row['path']}")
                if not rows:
                    print("no recipe in use needs its own toolchain environment")
        elif args.action == "install":
            for recipe, spec in wanted.items():
                if not args.quiet:
                    print(f"installing toolchain '{spec['name']}' for recipe {recipe} ...")
                env = toolchain.install(spec)
                if not args.quiet:
                    print(f"  {env.root} (python {env.versions.get('python')})")
        else:
            if len(wanted) != 1:
                raise ConfigError("toolchain path needs exactly one RECIPE that has a [toolchain]")
            env = toolchain.lookup(next(iter(wanted.values())))
            if env is None:
                raise ConfigError("toolchain not installed yet: run `edgebuild toolchain install RECIPE`")
            print(env.python)
    except toolchain.ToolchainError as exc:
        raise ConfigError(str(exc)) from None
    return 0


@click.command("toolchain")
@click.argument("action", type=click.Choice(["list", "install", "path"]))
@click.argument("recipes", nargs=-1, metavar="[RECIPE]...")
@opt.project
@opt.json_summary
@opt.verbose
@opt.quiet
@opt.trust_project_toolchains
def command(**params) -> int:
    return opt.call(run, params)

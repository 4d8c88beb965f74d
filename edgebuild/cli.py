"""Command line: a thin layer over edgebuild's modules, on click. Each command lives in
edgebuild/commands/<name>.py and declares the options that mean something for it (shared sets in
cli_options.py); a command's module is imported only when that command is used, so
`edgebuild --help` stays fast. Shell completion comes from click:
eval "$(_EDGEBUILD_COMPLETE=bash_source edgebuild)"."""

from __future__ import annotations

import importlib
import sys

import click

from edgebuild import __version__

# name -> one-line help; listing the commands (--help, completion) reads this, not the modules
COMMANDS = {
    "all": "build every target and bundle it",
    "build": "build artifacts only (-n explains what would run and why)",
    "bundle": "build the named target(s) if needed and emit their bundles",
    "init": "write a commented targets.toml from one or more models",
    "check": "operator-coverage report per target, without converting",
    "graph": "print the step graph (dot, mermaid or json)",
    "verify": "check a bundle's signature and every checksum",
    "keygen": "make an Ed25519 signing key pair",
    "clean": "remove build/ and bundles/ (and with --cache the cache too)",
    "cache": "cache statistics and garbage collection",
    "toolchain": "list, install or locate isolated toolchain environments",
    "report": "write an HTML report of every target's last build",
    "agent": "run a build agent: a Dask worker advertising this host's devices",
    "delta": "make a signed delta bundle from an installed release to a new one",
    "split-plan": "where to cut a target with a split table between device and server (ranked table)",
}


class LazyGroup(click.Group):
    """The commands of the table above, each imported from edgebuild.commands.<name> (its
    `command` object) only when it runs or its own help or options are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        command = importlib.import_module(f"edgebuild.commands.{name.replace('-', '_')}").command
        command.help = command.help or COMMANDS[name]
        _accept_contract_options(command)
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0]
        if name not in COMMANDS and not name.startswith("-") and not ctx.resilient_parsing:
            from edgebuild.project import did_you_mean

            raise click.UsageError(
                f"no such command '{name}'{did_you_mean(name, COMMANDS)}; commands: {', '.join(COMMANDS)}",
                ctx,
            )
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list:
        from click.shell_completion import CompletionItem

        names = [
            CompletionItem(name, help=text) for name, text in COMMANDS.items() if name.startswith(incomplete)
        ]
        return names + click.Command.shell_complete(self, ctx, incomplete)


# DESIGN.md's CLI contract: every command accepts these after its name. A command that has no use
# for one still accepts it (scripts written against the contract keep working), hidden from its
# help and not passed to it.
CONTRACT_OPTIONS = (
    ("-C", "--project"),
    ("-j", "--jobs"),
    ("--json",),
    ("--strict",),
    ("-v", "--verbose"),
    ("-q", "--quiet"),
)


def _accept_contract_options(command: click.Command) -> None:
    declared = {opt for param in command.params for opt in param.opts}
    for flags in CONTRACT_OPTIONS:
        if declared.isdisjoint(flags):
            is_flag = flags[-1] in ("--json", "--strict", "--verbose", "--quiet")
            command.params.append(
                click.Option(
                    flags, is_flag=is_flag, hidden=True, expose_value=False, type=None if is_flag else str
                )
            )


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    help="Build one trained model for many edge devices: cached, parallel, verified, signed.",
)
@click.version_option(__version__, prog_name="edgebuild", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is None:  # bare `edgebuild`: the help, and exit 2 as before
        click.echo(ctx.get_help())
        ctx.exit(2)


def parse_args(argv: list[str]):
    """The args object COMMAND's run(args) would get from `edgebuild COMMAND ...`, without running it."""
    from edgebuild.cli_options import namespace

    name, *rest = argv
    command = cli.get_command(None, name)
    if command is None:
        raise click.UsageError(f"No such command '{name}'.")
    with command.make_context(name, rest) as ctx:
        return namespace(name, ctx.params)


def main(argv: list[str] | None = None) -> int:
    try:
        return cli.main(args=argv, prog_name="edgebuild", standalone_mode=False) or 0
    except click.ClickException as exc:
        # a usage mistake: one line on stderr (DESIGN.md), exit 2 as argparse did
        message = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
        where = exc.ctx.command_path if getattr(exc, "ctx", None) else "edgebuild"
        print(f"{where}: error: {message}", file=sys.stderr)
        return exc.exit_code
    except click.Abort:
        print("edgebuild: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

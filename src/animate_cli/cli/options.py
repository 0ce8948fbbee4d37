"""Options shared by several subcommands, so each is spelled and documented once."""

from __future__ import annotations

import functools

import click


def checkpoint_options(function):
    """--checkpoint, --config and --align-corners/--no-align-corners: which model, and how it samples grids."""

    @click.option(
        "--checkpoint", "-c", "checkpoint", metavar="FILE|first|zeroth", default=None,
        help="Model weights: a .safetensors file of this project, a published FOMM .pth.tar (with --config), "
        "or a shipped model by name ('first', 'zeroth'). Default: the shipped first-order model.",
    )
    @click.option(
        "--config", "config", metavar="NAME|PATH", default=None,
        help="Config for a .pth.tar checkpoint: a preset (vox-256, taichi-256, ...) or a YAML file.",
    )
    @click.option(
        "--align-corners/--no-align-corners", "align_corners", default=None,
        help="Grid-sampling convention. Default: what the checkpoint records; published .pth.tar files were "
        "trained with align-corners.",
    )
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)

    return wrapper


def device_option(function):
    return click.option(
        "--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N|mps",
        help="Where the model runs; auto takes CUDA when present.",
    )(function)


def json_option(function):
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")(function)


def quiet_option(function):
    return click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")(function)

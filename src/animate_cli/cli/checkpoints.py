"""``animate checkpoints``: inspect and convert model files."""

from __future__ import annotations

import json

import click

from animate_cli.cli.options import json_option


@click.group()
def checkpoints() -> None:
    """Inspect and convert checkpoints."""


@checkpoints.command()
@click.argument("file", metavar="FILE|first|zeroth")
@click.option("--config", "config", metavar="NAME|PATH", default=None, help="Config for a .pth.tar checkpoint.")
@json_option
def info(file: str, config: str | None, as_json: bool) -> None:
    """Show a checkpoint's config, motion order, keypoints, size, grid convention and parameter counts."""
    from animate_cli.checkpoint import describe_checkpoint, load_checkpoint, resolve_checkpoint

    model = load_checkpoint(resolve_checkpoint(file), config=config)
    description = describe_checkpoint(model)
    if as_json:
        click.echo(json.dumps(description))
        return
    counts = description["parameters"]
    lines = [
        f"file:           {description['path']}",
        f"config:         {description['config']}",
        f"order:          {description['order']}",
        f"keypoints:      {description['num_kp']}",
        f"image size:     {description['image_size']}x{description['image_size']}",
        f"align corners:  {str(description['align_corners']).lower()}",
        "parameters:     " + ", ".join(f"{name} {count:,}" for name, count in counts.items()),
    ]
    if description["provenance"]:
        lines.append(f"provenance:     {json.dumps(description['provenance'])}")
    click.echo("\n".join(lines))


@checkpoints.command(name="list")
@json_option
def list_(as_json: bool) -> None:
    """Show the shipped models: name, file, size, order, resolution and their measured metrics."""
    from animate_cli.checkpoint import installed_checkpoints

    entries = installed_checkpoints()
    if as_json:
        click.echo(json.dumps(entries))
        return
    for entry in entries:
        if not entry["installed"]:
            click.echo(f"{entry['name']:<8} {entry['file']} (missing)")
            continue
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in entry["metrics"].items() if v is not None)
        click.echo(
            f"{entry['name']:<8} {entry['file']}  {entry['size_mb']:.1f} MB  {entry['order']} order  "
            f"{entry['image_size']}x{entry['image_size']}" + (f"  {metrics}" if metrics else "")
        )


@checkpoints.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("destination", type=click.Path(dir_okay=False))
@click.option("--config", "config", metavar="NAME|PATH", required=True, help="The checkpoint's config (preset or YAML).")
@click.option("--overwrite", is_flag=True, help="Replace DESTINATION if it exists.")
def convert(source: str, destination: str, config: str, overwrite: bool) -> None:
    """Convert a published FOMM .pth.tar into this project's .safetensors (config included)."""
    from pathlib import Path

    from animate_cli.checkpoint import convert_checkpoint
    from animate_cli.errors import BadInputError

    if not destination.endswith(".safetensors"):
        raise BadInputError(f"{destination}: the destination must end in .safetensors")
    if Path(destination).exists() and not overwrite:
        raise BadInputError(f"{destination}: exists (use --overwrite)")
    if not Path(destination).resolve().parent.is_dir():
        raise BadInputError(f"{destination}: folder does not exist")
    convert_checkpoint(source, destination, config)
    click.echo(f"wrote {destination}", err=True)

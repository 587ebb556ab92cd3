"""``superres models list | show NAME | download NAME... | verify [NAME...]``: the registered
models, their weight files and where they were found, one model's (or family's) every option,
fetching weights (sha256-checked) and checking them.

``verify`` exits 1 when an installed weight file is wrong (bad sha256, unreadable) or a model
named on its command line lacks a required file.
"""

from __future__ import annotations

from pathlib import Path

from vs_superres.contracts.errors import InvalidOption, SuperResError
from vs_superres.hostkit.flags import flag_spelling, option_lines
from vs_superres.runtime import registry
from vs_superres.runtime import weights as weights_mod
from vs_superres.runtime.engine_options import engine_options


def _where(wf) -> str:
    try:
        return str(weights_mod.resolve(wf, verify=False))
    except SuperResError:
        if wf.required:
            return "not installed"
        return "not installed; optional" + (f", or give {flag_spelling(wf.option, 'PATH')}" if wf.option else "")


def _checksum(wf) -> str:
    if wf.sha256:
        return f"sha256 {wf.sha256}"
    return "a folder, not hashed" if wf.folder else "no registered sha256"


def _weight_line(wf) -> str:
    return f"    {wf.relpath}  {_checksum(wf)}  ({_where(wf)})"


def _list() -> int:
    for d in registry.list_models():
        print(f"{d.name}  [{d.kind}, x{d.scale}, {d.family}, licence {d.licence}]  {d.description}")
        for wf in d.weights:
            print(_weight_line(wf))
    print("every option of a model: superres models show NAME")
    return 0


def _show(name: str) -> int:
    """A model's (or a family's models') description, weights and every option it takes, as
    ``superres upscale`` flags."""
    reg = registry.default_registry()
    if name in reg:
        models = [reg.get(name)]
    else:
        models = [m for m in reg.models(include_diagnostic=True) if m.family == name]
        if not models:
            known = ", ".join(m.name for m in reg.models())
            families = ", ".join(f.name for f in reg.families())
            raise InvalidOption(f"no model or family named {name!r}; models: {known}; families: {families}",
                                option="model")
    family = reg.family(models[0].family)
    for d in models:
        print(f"{d.name}  [{d.kind}, x{d.scale}, family {d.family}, licence {d.licence}]")
        print(f"  {d.description}")
        print("  weights:" if d.weights else "  weights: none")
        for wf in d.weights:
            print(_weight_line(wf))
    print()
    print(f"engine options of {models[0].name} (superres upscale --model {models[0].name} ...):")
    print("\n".join(option_lines(engine_options(models[0]), indent="  ")))
    own = family.options.for_hosts()
    print()
    if not len(own):
        print(f"{family.title or family.name} has no options of its own")
        return 0
    print(f"{family.title or family.name} options (also as -O NAME=VALUE):")
    print("\n".join(option_lines(own, indent="  ")))
    return 0


def cmd_models(args) -> int:
    if args.action == "list":
        return _list()
    if args.action == "show":
        return _show(args.name)
    names = args.names or [d.name for d in registry.list_models()]
    descs = [registry.get_model(n) for n in names]
    if args.action == "download":
        dest = Path(args.dest) if args.dest else None
        for d in descs:
            for wf in d.weights:
                try:
                    path = weights_mod.resolve(wf, model_name=d.name)
                    print(f"{d.name}: {wf.relpath} already present at {path}")
                    continue
                except SuperResError:
                    if not wf.url and not wf.required:
                        print(f"{d.name}: {wf.relpath} is optional and has no download location; get it from {wf.upstream}")
                        continue
                path = weights_mod.download(wf, dest)
                print(f"{d.name}: downloaded {wf.relpath} -> {path} (sha256 ok)")
        return 0
    return _verify(descs, named=bool(args.names))


def _how_to_get(d, wf) -> str:
    if wf.url:
        return f"run `superres models download {d.name}`"
    where = f"get it from {wf.upstream} and " if wf.upstream else "get it and "
    flag = f"pass --{wf.option.replace('_', '-')} PATH, or " if wf.option else ""
    return f"{where}{flag}put it at $SUPERRES_WEIGHTS/{wf.relpath}"


def _verify(descs, *, named: bool) -> int:
    """Check what is installed; list what is not. Fails (1) only for an installed file that is
    wrong, or a required file of a model the user named."""
    failed = checked = absent = 0
    for d in descs:
        for wf in d.weights:
            try:
                path = weights_mod.resolve(wf, model_name=d.name, verify=False)
            except SuperResError:
                if named and wf.required:
                    failed += 1
                    print(f"MISSING        {d.name}: {wf.relpath} is required and not installed; {_how_to_get(d, wf)}")
                else:
                    absent += 1
                    optional = " (optional)" if not wf.required else ""
                    print(f"NOT INSTALLED  {d.name}: {wf.relpath}{optional}")
                continue
            checked += 1
            try:
                weights_mod.verify_file(path, wf)
            except SuperResError as e:
                failed += 1
                print(f"CORRUPT        {d.name}: {str(e).splitlines()[0]}")
                continue
            except OSError as e:
                failed += 1
                print(f"UNREADABLE     {d.name}: {path}: {e.strerror or e}; check its permissions or download it again")
                continue
            how = "folder, not hashed" if wf.folder else ("sha256 ok" if wf.sha256 else "no sha256 registered")
            print(f"OK             {d.name}: {path} ({how})")
    verdict = f"{failed} problem(s)" if failed else "no problems"
    print(f"{checked} installed file(s) checked, {absent} not installed, {verdict}")
    return 1 if failed else 0

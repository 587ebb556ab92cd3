"""``superres models list | download NAME... | verify [NAME...]``: the weight files of the
registered models, where they were found, fetching them (sha256-checked) and checking them.

``verify`` exits 1 when an installed weight file is wrong (bad sha256, unreadable) or a model
named on its command line lacks a required file.
"""

from __future__ import annotations

from pathlib import Path

from vs_superres.contracts.errors import SuperResError
from vs_superres.runtime import registry
from vs_superres.runtime import weights as weights_mod


def _where(wf) -> str:
    try:
        return str(weights_mod.resolve(wf, verify=False))
    except SuperResError:
        return "not installed" + ("" if wf.required else f" (optional; or give {wf.option}=)")


def cmd_models(args) -> int:
    if args.action == "list":
        for d in registry.list_models():
            print(f"{d.name}  [{d.kind}, x{d.scale}, {d.family}, licence {d.licence}]  {d.description}")
            for wf in d.weights:
                print(f"    {wf.relpath}  sha256 {wf.sha256}  ({_where(wf)})")
        return 0
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

"""ComfyUI's V1 node API (``NODE_CLASS_MAPPINGS``) generated from :class:`~.spec.NodeSpec`.

V1 is what every ComfyUI release loads; a module that exports ``NODE_CLASS_MAPPINGS`` is
loaded through it even when it also has ``comfy_entrypoint`` (V1 wins). No ComfyUI import.
"""

from __future__ import annotations

from typing import Any

from vs_superres.comfy_nodes.spec import NodeSpec, Port


def v1_input(port: Port) -> tuple:
    """``(TYPE, {options})``; a combo is ``([choices], {options})``."""
    opts: dict[str, Any] = {}
    if port.tooltip:
        opts["tooltip"] = port.tooltip
    if port.is_widget:
        opts["default"] = port.default
    if port.kind in ("INT", "FLOAT"):
        for key, value in (("min", port.minimum), ("max", port.maximum), ("step", port.step)):
            if value is not None:
                opts[key] = value
    if port.kind == "INT" and port.control_after_generate is not None:
        opts["control_after_generate"] = port.control_after_generate
    if port.kind == "STRING":
        opts["multiline"] = port.multiline
    if port.kind == "COMBO":
        return (list(port.choices), opts)
    return (port.kind, opts)


def v1_class(spec: NodeSpec) -> type:
    def INPUT_TYPES(cls) -> dict:
        required: dict = {}
        optional: dict = {}
        for port in spec.inputs():
            (optional if port.optional else required)[port.name] = v1_input(port)
        types: dict = {"required": required, "hidden": {"unique_id": "UNIQUE_ID"}}
        if optional:
            types["optional"] = optional
        return types

    def run(self, unique_id=None, **inputs):
        return spec.run(unique_id=unique_id, **inputs)

    attributes: dict[str, Any] = {}
    if spec.validate is not None:
        validate = spec.validate

        def VALIDATE_INPUTS(cls, model):  # naming ``model`` replaces ComfyUI's list check for it
            return validate(model=model)

        attributes["VALIDATE_INPUTS"] = classmethod(VALIDATE_INPUTS)
    if spec.deprecated:
        attributes["DEPRECATED"] = True
    return type(spec.node_id, (), {
        **attributes,
        "__doc__": spec.description,
        "INPUT_TYPES": classmethod(INPUT_TYPES),
        "RETURN_TYPES": tuple(t for t, _ in spec.outputs),
        "RETURN_NAMES": tuple(n for _, n in spec.outputs),
        "FUNCTION": "run",
        "CATEGORY": spec.category,
        "DESCRIPTION": spec.description,
        "OUTPUT_NODE": spec.output_node,
        "run": run,
    })

"""ComfyUI's V3 node API (``comfy_api.latest``: ``io.ComfyNode``, ``ComfyExtension``,
``comfy_entrypoint``) generated from :class:`~.spec.NodeSpec`.

Imports ComfyUI, so it is only imported by :func:`comfy_entrypoint`, which ComfyUI calls for a
module that exports no ``NODE_CLASS_MAPPINGS``.
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from vs_superres.comfy_nodes.spec import NodeSpec, Port

_SOCKETS = {"IMAGE": io.Image, "VIDEO": io.Video, "MASK": io.Mask, "AUDIO": io.Audio}


def _socket(kind: str):
    return _SOCKETS.get(kind) or io.Custom(kind)


def v3_input(port: Port):
    common = {"optional": port.optional, "tooltip": port.tooltip or None}
    if port.kind == "INT":
        return io.Int.Input(port.name, default=port.default, min=port.minimum, max=port.maximum, step=port.step,
                            control_after_generate=port.control_after_generate, **common)
    if port.kind == "FLOAT":
        return io.Float.Input(port.name, default=port.default, min=port.minimum, max=port.maximum, step=port.step, **common)
    if port.kind == "BOOLEAN":
        return io.Boolean.Input(port.name, default=port.default, **common)
    if port.kind == "STRING":
        return io.String.Input(port.name, default=port.default, multiline=port.multiline, **common)
    if port.kind == "COMBO":
        return io.Combo.Input(port.name, options=list(port.choices), default=port.default, **common)
    return _socket(port.kind).Input(port.name, **common)


def v3_class(spec: NodeSpec) -> type:
    def define_schema(cls):
        return io.Schema(
            node_id=spec.node_id, display_name=spec.display_name, category=spec.category,
            description=spec.description, inputs=[v3_input(p) for p in spec.inputs()],
            outputs=[_socket(t).Output(display_name=n) for t, n in spec.outputs],
            hidden=[io.Hidden.unique_id], is_output_node=spec.output_node, is_deprecated=spec.deprecated,
        )

    def execute(cls, **inputs):
        return io.NodeOutput(*spec.run(unique_id=cls.hidden.unique_id, **inputs))

    attributes: dict = {}
    if spec.validate is not None:
        validate = spec.validate

        def validate_inputs(cls, model):  # naming ``model`` replaces ComfyUI's list check for it
            return validate(model=model)

        attributes["validate_inputs"] = classmethod(validate_inputs)
    return type(spec.node_id, (io.ComfyNode,), {
        **attributes,
        "__doc__": spec.description,
        "define_schema": classmethod(define_schema),
        "execute": classmethod(execute),
    })


class SuperResExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        from vs_superres.comfy_nodes.nodes import NODES

        return [v3_class(spec) for spec in NODES]


async def comfy_entrypoint() -> SuperResExtension:
    return SuperResExtension()

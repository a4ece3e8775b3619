"""The message definitions the contracts are generated from: ``proto/`` compiled with its comments.

protoc is run with ``--include_source_info`` so field and message comments become schema descriptions
(the compiled ``lfr.v1`` modules carry no comments). The result is then compared with those compiled
modules: a document generated from ``.proto`` files that the running code was not built from would
describe a wire format nobody speaks, so a mismatch stops generation and asks for ``make proto``.
"""

from __future__ import annotations

import importlib
import importlib.resources
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2

import lfr

PACKAGE = "lfr.v1"
REPO_ROOT = Path(lfr.__file__).resolve().parents[2]
PROTO_DIR = REPO_ROOT / "proto"


class ContractError(RuntimeError):
    """The contracts cannot be generated (protoc missing, protos invalid or out of step with lfr.v1)."""


@dataclass
class MessageDef:
    """One message: its descriptor plus the comments that protoc kept for it and its fields."""

    full_name: str
    proto: descriptor_pb2.DescriptorProto
    file: str
    comment: str = ""
    field_comments: dict[str, str] = field(default_factory=dict)


@dataclass
class EnumDef:
    full_name: str
    proto: descriptor_pb2.EnumDescriptorProto
    file: str
    comment: str = ""


@dataclass
class ProtoModel:
    messages: dict[str, MessageDef]
    enums: dict[str, EnumDef]


def _comment(loc: descriptor_pb2.SourceCodeInfo.Location) -> str:
    parts = [loc.leading_comments.strip(), loc.trailing_comments.strip()]
    return " ".join(" ".join(p.split()) for p in parts if p)


def compile_protos(proto_dir: Path = PROTO_DIR) -> descriptor_pb2.FileDescriptorSet:
    """Run protoc (from grpcio-tools, a dev dependency) over ``proto_dir``; keep comments."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise ContractError("grpcio-tools is needed to read proto/ (pip install -e '.[dev]')") from exc
    files = sorted(p.relative_to(proto_dir).as_posix() for p in (proto_dir / "lfr" / "v1").glob("*.proto"))
    if not files:
        raise ContractError(f"no .proto files under {proto_dir / 'lfr' / 'v1'}")
    include = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lfr.pb"
        args = [
            "protoc",
            f"-I{proto_dir}",
            f"-I{include}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *files,
        ]
        if protoc.main(args) != 0:
            raise ContractError(f"protoc failed on {proto_dir}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def check_compiled(fds: descriptor_pb2.FileDescriptorSet) -> None:
    """Raise ContractError unless each file equals the compiled ``lfr.v1`` module built from it."""
    for f in fds.file:
        module = "lfr.v1." + Path(f.name).stem + "_pb2"
        try:
            compiled = importlib.import_module(module)
        except ImportError as exc:
            raise ContractError(f"{module} is missing: run make proto") from exc
        built = descriptor_pb2.FileDescriptorProto.FromString(compiled.DESCRIPTOR.serialized_pb)
        source = descriptor_pb2.FileDescriptorProto()
        source.CopyFrom(f)
        source.ClearField("source_code_info")
        _clear_json_names(source.message_type)
        if built != source:
            raise ContractError(f"{module} was not built from proto/{f.name}: run make proto")


def _clear_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    """protoc fills json_name in descriptor sets, never in generated modules: not a difference."""
    for msg in messages:
        for fd in msg.field:
            fd.ClearField("json_name")
        _clear_json_names(msg.nested_type)


def load(proto_dir: Path = PROTO_DIR) -> ProtoModel:
    fds = compile_protos(proto_dir)
    check_compiled(fds)
    messages: dict[str, MessageDef] = {}
    enums: dict[str, EnumDef] = {}
    for f in fds.file:
        comments = {tuple(loc.path): _comment(loc) for loc in f.source_code_info.location}
        # Paths: 4 = message_type, 2 = field, 5 = enum_type (FileDescriptorProto / DescriptorProto numbers).
        for i, enum in enumerate(f.enum_type):
            name = f"{f.package}.{enum.name}"
            enums[name] = EnumDef(name, enum, f.name, comments.get((5, i), ""))
        for i, msg in enumerate(f.message_type):
            name = f"{f.package}.{msg.name}"
            fields = {fd.name: comments.get((4, i, 2, j), "") for j, fd in enumerate(msg.field)}
            messages[name] = MessageDef(name, msg, f.name, comments.get((4, i), ""), fields)
    return ProtoModel(messages, enums)

import { create, createFileRegistry, type DescFile, type FileRegistry, type MessageInitShape } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  type DescriptorProtoSchema,
  type FieldDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

/**
 * Small builders for describing third-party gRPC schemas (health, reflection) at runtime from
 * their published wire shape, the way src/platform/errors/error-details.ts describes
 * google.rpc.ErrorInfo: their .proto files are not ours to commit, and these few field numbers
 * are the whole contract a client relies on.
 */
type FieldInit = MessageInitShape<typeof FieldDescriptorProtoSchema>;
type MessageInit = MessageInitShape<typeof DescriptorProtoSchema>;
type FileInit = MessageInitShape<typeof FileDescriptorProtoSchema>;

export { Type };

const jsonName = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** A singular field; `typeName` for message and enum fields, `oneofIndex` for oneof members. */
export function field(
  name: string,
  number: number,
  type: Type,
  options: { typeName?: string; oneofIndex?: number; repeated?: boolean } = {},
): FieldInit {
  return {
    name,
    number,
    type,
    label: options.repeated ? Label.REPEATED : Label.OPTIONAL,
    jsonName: jsonName(name),
    ...(options.typeName === undefined ? {} : { typeName: options.typeName }),
    ...(options.oneofIndex === undefined ? {} : { oneofIndex: options.oneofIndex }),
  };
}

export function message(name: string, fields: FieldInit[], more: Omit<MessageInit, "name" | "field" | "$typeName"> = {}): MessageInit {
  return { ...more, name, field: fields } as MessageInit;
}

/** Builds one proto3 file and resolves it against the given dependencies. */
export function describeFile(init: FileInit, dependencies: DescFile[] = []): { file: DescFile; registry: FileRegistry } {
  const proto = create(FileDescriptorProtoSchema, { syntax: "proto3", ...init });
  const byName = new Map(dependencies.map((dep) => [dep.proto.name, dep]));
  const registry = createFileRegistry(proto, (name) => byName.get(name));
  const file = registry.getFile(proto.name);
  if (!file) throw new Error(`descriptor for ${proto.name} missing`);
  return { file, registry };
}

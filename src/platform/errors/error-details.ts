import { create, createFileRegistry, type DescMessage } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  file_google_protobuf_duration,
  type Duration,
} from "@bufbuild/protobuf/wkt";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";

/**
 * The two google.rpc error-detail messages Gatehouse sends (ErrorInfo, RetryInfo), described at
 * runtime from their well-known wire shape. Generating them from googleapis would put
 * third-party files into gen/; these few field numbers are the whole contract clients decode.
 */
const registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "google/rpc/error_details.proto",
    package: "google.rpc",
    syntax: "proto3",
    dependency: ["google/protobuf/duration.proto"],
    messageType: [
      {
        name: "ErrorInfo",
        field: [
          { name: "reason", number: 1, type: Type.STRING, label: Label.OPTIONAL, jsonName: "reason" },
          { name: "domain", number: 2, type: Type.STRING, label: Label.OPTIONAL, jsonName: "domain" },
          {
            name: "metadata",
            number: 3,
            type: Type.MESSAGE,
            label: Label.REPEATED,
            typeName: ".google.rpc.ErrorInfo.MetadataEntry",
            jsonName: "metadata",
          },
        ],
        nestedType: [
          {
            name: "MetadataEntry",
            options: { mapEntry: true },
            field: [
              { name: "key", number: 1, type: Type.STRING, label: Label.OPTIONAL, jsonName: "key" },
              { name: "value", number: 2, type: Type.STRING, label: Label.OPTIONAL, jsonName: "value" },
            ],
          },
        ],
      },
      {
        name: "RetryInfo",
        field: [
          {
            name: "retry_delay",
            number: 1,
            type: Type.MESSAGE,
            label: Label.OPTIONAL,
            typeName: ".google.protobuf.Duration",
            jsonName: "retryDelay",
          },
        ],
      },
    ],
  }),
  (name) => (name === "google/protobuf/duration.proto" ? file_google_protobuf_duration : undefined),
);

function message<T extends object>(typeName: string): GenMessage<T & { $typeName: string }> {
  const desc: DescMessage | undefined = registry.getMessage(typeName);
  if (!desc) throw new Error(`descriptor for ${typeName} missing`);
  return desc as unknown as GenMessage<T & { $typeName: string }>;
}

export type ErrorInfo = { $typeName: "google.rpc.ErrorInfo"; reason: string; domain: string; metadata: Record<string, string> };
export type RetryInfo = { $typeName: "google.rpc.RetryInfo"; retryDelay?: Duration };

export const ErrorInfoSchema = message<ErrorInfo>("google.rpc.ErrorInfo") as unknown as GenMessage<ErrorInfo>;
export const RetryInfoSchema = message<RetryInfo>("google.rpc.RetryInfo") as unknown as GenMessage<RetryInfo>;

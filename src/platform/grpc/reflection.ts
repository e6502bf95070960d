import { create, toBinary, type DescFile, type DescMessage, type DescService, type DescEnum } from "@bufbuild/protobuf";
import type { GenMessage, GenService } from "@bufbuild/protobuf/codegenv2";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { describeFile, field, message, Type } from "./runtime-schema.ts";

/**
 * gRPC server reflection, `grpc.reflection.v1` and the older `grpc.reflection.v1alpha` (same wire
 * shape, other package) that some tools still ask for first. `buf curl`, grpcurl and Postman use
 * it to call Gatehouse without its .proto files: they ask which services exist and then for the
 * FileDescriptorProtos that define them, dependencies included.
 */
type MessageRequest =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

export type ServerReflectionRequest = { $typeName: string; host: string; messageRequest: MessageRequest };
export type ServerReflectionResponse = { $typeName: string };

type ReflectionService = GenService<{
  serverReflectionInfo: {
    methodKind: "bidi_streaming";
    input: GenMessage<ServerReflectionRequest>;
    output: GenMessage<ServerReflectionResponse>;
  };
}>;

function describeReflection(pkg: "grpc.reflection.v1" | "grpc.reflection.v1alpha") {
  const t = (name: string) => `.${pkg}.${name}`;
  const { file, registry } = describeFile({
    name: `grpc/reflection/${pkg.split(".")[2]}/reflection.proto`,
    package: pkg,
    messageType: [
      message(
        "ServerReflectionRequest",
        [
          field("host", 1, Type.STRING),
          field("file_by_filename", 3, Type.STRING, { oneofIndex: 0 }),
          field("file_containing_symbol", 4, Type.STRING, { oneofIndex: 0 }),
          field("file_containing_extension", 5, Type.MESSAGE, { typeName: t("ExtensionRequest"), oneofIndex: 0 }),
          field("all_extension_numbers_of_type", 6, Type.STRING, { oneofIndex: 0 }),
          field("list_services", 7, Type.STRING, { oneofIndex: 0 }),
        ],
        { oneofDecl: [{ name: "message_request" }] },
      ),
      message("ExtensionRequest", [field("containing_type", 1, Type.STRING), field("extension_number", 2, Type.INT32)]),
      message(
        "ServerReflectionResponse",
        [
          field("valid_host", 1, Type.STRING),
          field("original_request", 2, Type.MESSAGE, { typeName: t("ServerReflectionRequest") }),
          field("file_descriptor_response", 4, Type.MESSAGE, { typeName: t("FileDescriptorResponse"), oneofIndex: 0 }),
          field("all_extension_numbers_response", 5, Type.MESSAGE, { typeName: t("ExtensionNumberResponse"), oneofIndex: 0 }),
          field("list_services_response", 6, Type.MESSAGE, { typeName: t("ListServiceResponse"), oneofIndex: 0 }),
          field("error_response", 7, Type.MESSAGE, { typeName: t("ErrorResponse"), oneofIndex: 0 }),
        ],
        { oneofDecl: [{ name: "message_response" }] },
      ),
      message("FileDescriptorResponse", [field("file_descriptor_proto", 1, Type.BYTES, { repeated: true })]),
      message("ExtensionNumberResponse", [
        field("base_type_name", 1, Type.STRING),
        field("extension_number", 2, Type.INT32, { repeated: true }),
      ]),
      message("ListServiceResponse", [field("service", 1, Type.MESSAGE, { typeName: t("ServiceResponse"), repeated: true })]),
      message("ServiceResponse", [field("name", 1, Type.STRING)]),
      message("ErrorResponse", [field("error_code", 1, Type.INT32), field("error_message", 2, Type.STRING)]),
    ],
    service: [
      {
        name: "ServerReflection",
        method: [
          {
            name: "ServerReflectionInfo",
            inputType: t("ServerReflectionRequest"),
            outputType: t("ServerReflectionResponse"),
            clientStreaming: true,
            serverStreaming: true,
          },
        ],
      },
    ],
  });
  const response = registry.getMessage(`${pkg}.ServerReflectionResponse`) as DescMessage;
  const service = registry.getService(`${pkg}.ServerReflection`) as unknown as ReflectionService;
  return { file, service, response };
}

const v1 = describeReflection("grpc.reflection.v1");
const v1alpha = describeReflection("grpc.reflection.v1alpha");

export const ServerReflectionV1 = v1.service;
export const ServerReflectionV1Alpha = v1alpha.service;

/** gRPC status codes carried in an ErrorResponse (reflection reports errors in-band). */
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

/** What reflection knows: every served service and, transitively, the files that define them. */
export class SchemaIndex {
  readonly services: readonly string[];
  readonly #files = new Map<string, DescFile>();
  readonly #symbols = new Map<string, DescFile>();
  readonly #extensions = new Map<string, Map<number, DescFile>>();
  readonly #encoded = new Map<DescFile, Uint8Array>();

  constructor(services: readonly DescService[], extraFiles: readonly DescFile[] = []) {
    this.services = services.map((s) => s.typeName);
    for (const file of [...services.map((s) => s.file), ...extraFiles]) this.#add(file);
  }

  #add(file: DescFile): void {
    if (this.#files.has(file.proto.name)) return;
    this.#files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.#add(dep);
    const addEnum = (e: DescEnum, parent: string) => {
      this.#symbols.set(e.typeName, file);
      // Enum values are scoped beside their enum, not inside it.
      for (const value of e.values) this.#symbols.set(parent ? `${parent}.${value.name}` : value.name, file);
    };
    const addMessage = (m: DescMessage) => {
      this.#symbols.set(m.typeName, file);
      for (const f of m.fields) this.#symbols.set(`${m.typeName}.${f.name}`, file);
      for (const o of m.oneofs) this.#symbols.set(`${m.typeName}.${o.name}`, file);
      for (const nested of m.nestedMessages) addMessage(nested);
      for (const e of m.nestedEnums) addEnum(e, m.typeName);
      for (const ext of m.nestedExtensions) this.#addExtension(ext.typeName, ext.extendee.typeName, ext.number, file);
    };
    for (const m of file.messages) addMessage(m);
    for (const e of file.enums) addEnum(e, file.proto.package);
    for (const ext of file.extensions) this.#addExtension(ext.typeName, ext.extendee.typeName, ext.number, file);
    for (const s of file.services) {
      this.#symbols.set(s.typeName, file);
      for (const m of s.methods) this.#symbols.set(`${s.typeName}.${m.name}`, file);
    }
  }

  #addExtension(name: string, extendee: string, number: number, file: DescFile): void {
    this.#symbols.set(name, file);
    let numbers = this.#extensions.get(extendee);
    if (!numbers) this.#extensions.set(extendee, (numbers = new Map()));
    numbers.set(number, file);
  }

  fileByName(name: string): DescFile | undefined {
    return this.#files.get(name);
  }

  fileContainingSymbol(symbol: string): DescFile | undefined {
    return this.#symbols.get(symbol.replace(/^\./, ""));
  }

  fileContainingExtension(extendee: string, number: number): DescFile | undefined {
    return this.#extensions.get(extendee.replace(/^\./, ""))?.get(number);
  }

  extensionNumbersOf(extendee: string): number[] | undefined {
    const numbers = this.#extensions.get(extendee.replace(/^\./, ""));
    if (numbers) return [...numbers.keys()].sort((a, b) => a - b);
    return this.#symbols.has(extendee.replace(/^\./, "")) ? [] : undefined;
  }

  /** The file first, then everything it imports, transitively, each once, as serialized FileDescriptorProtos. */
  encodeWithDependencies(file: DescFile): Uint8Array[] {
    const seen = new Set<DescFile>();
    const order: DescFile[] = [];
    const visit = (f: DescFile) => {
      if (seen.has(f)) return;
      seen.add(f);
      order.push(f);
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return order.map((f) => {
      let bytes = this.#encoded.get(f);
      if (!bytes) this.#encoded.set(f, (bytes = toBinary(FileDescriptorProtoSchema, f.proto)));
      return bytes;
    });
  }
}

/** The files that define the reflection services themselves, for serving them through reflection too. */
export const reflectionFiles = { v1: v1.file, v1alpha: v1alpha.file };

/** One implementation per reflection version; both answer from the same index. */
export function createReflectionImpls(index: SchemaIndex): {
  v1: ServiceImpl<typeof ServerReflectionV1>;
  v1alpha: ServiceImpl<typeof ServerReflectionV1Alpha>;
} {
  const impl = (responseSchema: DescMessage) => ({
    async *serverReflectionInfo(requests: AsyncIterable<ServerReflectionRequest>) {
      for await (const request of requests) {
        yield create(responseSchema as GenMessage<ServerReflectionResponse>, {
          validHost: request.host,
          originalRequest: request,
          messageResponse: answer(index, request.messageRequest),
        } as never);
      }
    },
  });
  return { v1: impl(v1.response), v1alpha: impl(v1alpha.response) };
}

function answer(index: SchemaIndex, request: MessageRequest): { case: string; value: object } {
  const files = (file: DescFile | undefined, what: string) =>
    file
      ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.encodeWithDependencies(file) } }
      : error(NOT_FOUND, `${what} not found`);
  switch (request.case) {
    case "fileByFilename":
      return files(index.fileByName(request.value), `file "${request.value}"`);
    case "fileContainingSymbol":
      return files(index.fileContainingSymbol(request.value), `symbol "${request.value}"`);
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = request.value;
      return files(index.fileContainingExtension(containingType, extensionNumber), `extension ${extensionNumber} of "${containingType}"`);
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbersOf(request.value);
      return numbers
        ? { case: "allExtensionNumbersResponse", value: { baseTypeName: request.value, extensionNumber: numbers } }
        : error(NOT_FOUND, `type "${request.value}" not found`);
    }
    case "listServices":
      return { case: "listServicesResponse", value: { service: index.services.map((name) => ({ name })) } };
    default:
      return error(INVALID_ARGUMENT, "the request names no question");
  }
}

const error = (errorCode: number, errorMessage: string) => ({ case: "errorResponse", value: { errorCode, errorMessage } });

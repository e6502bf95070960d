// Prepares the third-party .proto files that buf needs to compile proto/, in
// the git-ignored folder .third_party/proto/ (a second module in buf.yaml, never
// linted, never generated). Runs as the npm postinstall hook and before every
// buf command; it works offline and leaves files that are up to date untouched.
//
// - google/protobuf/*.proto: buf ships the well-known types, so none are copied.
// - buf/validate/validate.proto: @bufbuild/protovalidate ships it only as an
//   embedded FileDescriptorProto, so it is printed back to .proto source here.
//   The print keeps every declaration but leaves out the rule metadata that
//   validate.proto attaches to its own fields as custom options: buf only needs
//   the declarations to compile our rules, and at run time the validator reads
//   the package's own descriptor, never this file.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { isFieldSet, ScalarType } from "@bufbuild/protobuf";
import type { DescEnum, DescField, DescFile, DescMessage, Message } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import type { ReflectMessage } from "@bufbuild/protobuf/reflect";
import type {
  DescriptorProto,
  EnumDescriptorProto,
  FieldDescriptorProto,
  FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import {
  Edition,
  EnumOptionsSchema,
  EnumValueOptionsSchema,
  ExtensionRangeOptionsSchema,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  FileOptionsSchema,
  MessageOptionsSchema,
  OneofOptionsSchema,
} from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const repoRoot = join(import.meta.dirname, "..");
const outDir = join(repoRoot, ".third_party", "proto");

/** Files that buf provides itself and that must therefore not be written. */
const providedByBuf = (name: string): boolean => name.startsWith("google/protobuf/");

// Field numbers run up to 2^29-1; descriptors store message ranges end-exclusive.
const MAX_FIELD_NUMBER = 536_870_911;
const MAX_ENUM_NUMBER = 2_147_483_647;

function main(): void {
  const started = performance.now();
  const note = sourceNote();
  const wanted = new Map<string, string>();
  for (const file of withDependencies(file_buf_validate_validate)) {
    if (!providedByBuf(file.proto.name)) {
      wanted.set(file.proto.name, printFile(file.proto, note));
    }
  }
  const changed = sync(outDir, wanted);
  const ms = Math.round(performance.now() - started);
  const summary = changed.length === 0 ? "up to date" : `wrote ${changed.join(", ")}`;
  console.log(`third-party protos in ${relative(repoRoot, outDir)}/: ${summary} (${ms} ms)`);
}

function sourceNote(): string {
  const pkg = readPackageJson("@bufbuild/protovalidate");
  return `Printed by scripts/third-party-protos.ts from the descriptor embedded in ${pkg.name}@${pkg.version}. Do not edit.`;
}

/** Reads the package.json of an installed package, which its "exports" may hide. */
function readPackageJson(name: string): { name: string; version: string } {
  let dir = dirname(fileURLToPath(import.meta.resolve(name)));
  for (;;) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string; version?: string };
      if (pkg.name === name && pkg.version !== undefined) {
        return { name, version: pkg.version };
      }
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(`cannot find package.json of ${name}`);
    }
    dir = parent;
  }
}

/** The file and, transitively, every file it imports, each once. */
function withDependencies(root: DescFile): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (!seen.has(file.proto.name)) {
      seen.set(file.proto.name, file);
      file.dependencies.forEach(visit);
    }
  };
  visit(root);
  return [...seen.values()];
}

/**
 * Makes `dir` hold exactly the `wanted` files (relative path -> content):
 * writes what differs, deletes what is no longer wanted. Returns what it wrote.
 */
function sync(dir: string, wanted: Map<string, string>): string[] {
  for (const path of listFiles(dir)) {
    if (!wanted.has(path)) {
      rmSync(join(dir, path));
    }
  }
  const written: string[] = [];
  for (const [path, content] of wanted) {
    const target = join(dir, path);
    if (existsSync(target) && readFileSync(target, "utf8") === content) {
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, content);
    written.push(path);
  }
  return written;
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) {
    return [];
  }
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
}

// ---------------------------------------------------------------------------
// Printing a FileDescriptorProto as .proto source.
//
// Type names are printed fully qualified with a leading dot, exactly as the
// descriptor stores them, so no scoping rule can resolve them differently.
// Services and proto2 groups are not needed for validate.proto and are refused
// rather than silently dropped.

type Syntax = "proto2" | "proto3" | "editions";

/** What the printer needs to know about the file while printing its parts. */
interface FileContext {
  readonly syntax: Syntax;
  /** Map entry messages by fully-qualified name (with leading dot). */
  readonly mapEntries: Map<string, DescriptorProto>;
}

function printFile(file: FileDescriptorProto, note: string): string {
  if (file.service.length > 0) {
    throw new Error(`${file.name}: printing services is not supported`);
  }
  const syntax = syntaxOf(file);
  const scope = file.package === "" ? "" : `.${file.package}`;
  const ctx: FileContext = { syntax, mapEntries: collectMapEntries(file.messageType, scope) };
  const out: string[] = [`// ${note}`, ""];
  out.push(syntax === "editions" ? `edition = ${quote(editionName(file.edition))};` : `syntax = ${quote(syntax)};`, "");
  if (file.package !== "") {
    out.push(`package ${file.package};`, "");
  }
  if (file.dependency.length > 0) {
    const publicDeps = new Set(file.publicDependency);
    const weakDeps = new Set(file.weakDependency);
    file.dependency.forEach((dep, i) => {
      const modifier = publicDeps.has(i) ? "public " : weakDeps.has(i) ? "weak " : "";
      out.push(`import ${modifier}${quote(dep)};`);
    });
    out.push("");
  }
  // Sorted by name, as `buf format` orders file options.
  const fileOptions = printOptionStatements(FileOptionsSchema, file.options).sort();
  if (fileOptions.length > 0) {
    out.push(...fileOptions, "");
  }
  const sections = [
    ...file.messageType.map((m) => printMessage(m, scope, ctx)),
    ...file.enumType.map((e) => printEnum(e, ctx)),
    ...printExtends(file.extension, ctx),
  ];
  out.push(...sections.flatMap((lines, i) => (i === 0 ? lines : ["", ...lines])));
  return `${out.join("\n")}\n`;
}

function syntaxOf(file: FileDescriptorProto): Syntax {
  switch (file.syntax) {
    case "":
    case "proto2":
      return "proto2";
    case "proto3":
    case "editions":
      return file.syntax;
    default:
      throw new Error(`${file.name}: unknown syntax ${JSON.stringify(file.syntax)}`);
  }
}

/** `EDITION_2023` -> `2023`. */
function editionName(edition: Edition): string {
  const name: string | undefined = Edition[edition];
  if (name === undefined || !name.startsWith("EDITION_")) {
    throw new Error(`unknown edition ${String(edition)}`);
  }
  return name.slice("EDITION_".length);
}

/** `scope` is the fully-qualified name of the package, with a leading dot, or "". */
function collectMapEntries(messages: DescriptorProto[], scope: string): Map<string, DescriptorProto> {
  const entries = new Map<string, DescriptorProto>();
  const visit = (message: DescriptorProto, scope: string): void => {
    const name = `${scope}.${message.name}`;
    if (message.options?.mapEntry === true) {
      entries.set(name, message);
    }
    message.nestedType.forEach((nested) => visit(nested, name));
  };
  messages.forEach((message) => visit(message, scope));
  return entries;
}

function printMessage(message: DescriptorProto, scope: string, ctx: FileContext): string[] {
  const name = `${scope}.${message.name}`;
  const body: string[] = [...printOptionStatements(MessageOptionsSchema, message.options)];

  // Members of a real oneof are contiguous; the block is printed at the first one.
  const printedOneofs = new Set<number>();
  for (const field of message.field) {
    const oneofIndex = oneofIndexOf(field);
    if (oneofIndex === undefined) {
      body.push(printField(field, ctx, false));
      continue;
    }
    if (printedOneofs.has(oneofIndex)) {
      continue;
    }
    printedOneofs.add(oneofIndex);
    const oneof = message.oneofDecl[oneofIndex];
    if (oneof === undefined) {
      throw new Error(`${name}.${field.name}: oneof index ${oneofIndex} out of range`);
    }
    const members = message.field.filter((f) => oneofIndexOf(f) === oneofIndex);
    body.push(
      ...block(`oneof ${oneof.name}`, [
        ...printOptionStatements(OneofOptionsSchema, oneof.options),
        ...members.map((member) => printField(member, ctx, true)),
      ]),
    );
  }

  for (const nested of message.enumType) {
    body.push(...printEnum(nested, ctx));
  }
  for (const nested of message.nestedType) {
    if (nested.options?.mapEntry !== true) {
      body.push(...printMessage(nested, name, ctx));
    }
  }
  body.push(...printExtends(message.extension, ctx).flat());

  for (const range of message.extensionRange) {
    const options = printOptionList(ExtensionRangeOptionsSchema, range.options);
    body.push(`extensions ${printRange(range.start, range.end - 1, MAX_FIELD_NUMBER)}${options};`);
  }
  if (message.reservedRange.length > 0) {
    const ranges = message.reservedRange.map((r) => printRange(r.start, r.end - 1, MAX_FIELD_NUMBER));
    body.push(`reserved ${ranges.join(", ")};`);
  }
  if (message.reservedName.length > 0) {
    body.push(`reserved ${message.reservedName.map((n) => reservedName(n, ctx)).join(", ")};`);
  }
  return block(`message ${message.name}`, body);
}

/** The index of the real (not synthetic proto3 `optional`) oneof the field belongs to. */
function oneofIndexOf(field: FieldDescriptorProto): number | undefined {
  const inOneof = isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex) && !field.proto3Optional;
  return inOneof ? field.oneofIndex : undefined;
}

/** One field declaration; `inOneof` drops the label, which oneof members cannot have. */
function printField(field: FieldDescriptorProto, ctx: FileContext, inOneof: boolean): string {
  const mapEntry = ctx.mapEntries.get(field.typeName);
  let type: string;
  let label: string;
  if (mapEntry !== undefined && field.label === FieldDescriptorProto_Label.REPEATED) {
    const [key, value] = mapEntry.field;
    if (key === undefined || value === undefined) {
      throw new Error(`${field.typeName}: a map entry needs a key and a value field`);
    }
    type = `map<${fieldType(key)}, ${fieldType(value)}>`;
    label = "";
  } else {
    type = fieldType(field);
    label = inOneof ? "" : fieldLabel(field, ctx);
  }

  const options: string[] = [];
  if (isFieldSet(field, FieldDescriptorProtoSchema.field.defaultValue)) {
    options.push(`default = ${defaultValue(field)}`);
  }
  const isExtension = field.extendee !== "";
  const hasJsonName = isFieldSet(field, FieldDescriptorProtoSchema.field.jsonName);
  if (!isExtension && hasJsonName && field.jsonName !== defaultJsonName(field.name)) {
    options.push(`json_name = ${quote(field.jsonName)}`);
  }
  options.push(...optionAssignments(FieldOptionsSchema, field.options));
  const suffix = options.length > 0 ? ` [${options.join(", ")}]` : "";
  return `${label}${type} ${field.name} = ${field.number}${suffix};`;
}

/** Editions express presence with features (printed as options), not labels. */
function fieldLabel(field: FieldDescriptorProto, ctx: FileContext): string {
  if (field.label === FieldDescriptorProto_Label.REPEATED) {
    return "repeated ";
  }
  switch (ctx.syntax) {
    case "editions":
      return "";
    case "proto2":
      return field.label === FieldDescriptorProto_Label.REQUIRED ? "required " : "optional ";
    case "proto3":
      return field.proto3Optional === true ? "optional " : "";
  }
}

const scalarKeywords = new Map<FieldDescriptorProto_Type, string>([
  [FieldDescriptorProto_Type.DOUBLE, "double"],
  [FieldDescriptorProto_Type.FLOAT, "float"],
  [FieldDescriptorProto_Type.INT64, "int64"],
  [FieldDescriptorProto_Type.UINT64, "uint64"],
  [FieldDescriptorProto_Type.INT32, "int32"],
  [FieldDescriptorProto_Type.FIXED64, "fixed64"],
  [FieldDescriptorProto_Type.FIXED32, "fixed32"],
  [FieldDescriptorProto_Type.BOOL, "bool"],
  [FieldDescriptorProto_Type.STRING, "string"],
  [FieldDescriptorProto_Type.BYTES, "bytes"],
  [FieldDescriptorProto_Type.UINT32, "uint32"],
  [FieldDescriptorProto_Type.SFIXED32, "sfixed32"],
  [FieldDescriptorProto_Type.SFIXED64, "sfixed64"],
  [FieldDescriptorProto_Type.SINT32, "sint32"],
  [FieldDescriptorProto_Type.SINT64, "sint64"],
]);

function fieldType(field: FieldDescriptorProto): string {
  if (field.type === FieldDescriptorProto_Type.MESSAGE || field.type === FieldDescriptorProto_Type.ENUM) {
    return field.typeName;
  }
  const keyword = scalarKeywords.get(field.type);
  if (keyword === undefined) {
    throw new Error(`${field.name}: printing fields of type ${String(field.type)} is not supported`);
  }
  return keyword;
}

/** The descriptor stores defaults as text already; only strings need quoting again. */
function defaultValue(field: FieldDescriptorProto): string {
  const text = field.defaultValue;
  switch (field.type) {
    case FieldDescriptorProto_Type.STRING:
      return quote(text);
    case FieldDescriptorProto_Type.BYTES:
      return `"${text}"`; // already C-escaped by the compiler
    default:
      return text;
  }
}

/** The JSON name protoc derives when none is declared: `foo_bar` -> `fooBar`. */
function defaultJsonName(name: string): string {
  return name.replace(/_(.)?/g, (_match, next: string | undefined) => (next === undefined ? "" : next.toUpperCase()));
}

function printEnum(enumType: EnumDescriptorProto, ctx: FileContext): string[] {
  const body: string[] = [...printOptionStatements(EnumOptionsSchema, enumType.options)];
  for (const value of enumType.value) {
    body.push(`${value.name} = ${value.number}${printOptionList(EnumValueOptionsSchema, value.options)};`);
  }
  // Enum reserved ranges are inclusive at both ends.
  if (enumType.reservedRange.length > 0) {
    const ranges = enumType.reservedRange.map((r) => printRange(r.start, r.end, MAX_ENUM_NUMBER));
    body.push(`reserved ${ranges.join(", ")};`);
  }
  if (enumType.reservedName.length > 0) {
    body.push(`reserved ${enumType.reservedName.map((n) => reservedName(n, ctx)).join(", ")};`);
  }
  return block(`enum ${enumType.name}`, body);
}

/** Extensions grouped into one `extend` block per extended message, in order of appearance. */
function printExtends(extensions: FieldDescriptorProto[], ctx: FileContext): string[][] {
  const byExtendee = new Map<string, FieldDescriptorProto[]>();
  for (const extension of extensions) {
    byExtendee.set(extension.extendee, [...(byExtendee.get(extension.extendee) ?? []), extension]);
  }
  return [...byExtendee].map(([extendee, fields]) =>
    block(
      `extend ${extendee}`,
      fields.map((field) => printField(field, ctx, false)),
    ),
  );
}

/** `first` and `last` inclusive. */
function printRange(start: number, last: number, max: number): string {
  if (start === last) {
    return String(start);
  }
  return `${start} to ${last >= max ? "max" : String(last)}`;
}

/** Editions write reserved names as identifiers, older syntaxes as strings. */
function reservedName(name: string, ctx: FileContext): string {
  return ctx.syntax === "editions" ? name : quote(name);
}

function block(header: string, body: string[]): string[] {
  if (body.length === 0) {
    return [`${header} {}`];
  }
  return [`${header} {`, ...body.map((line) => (line === "" ? "" : `  ${line}`)), "}"];
}

// ---------------------------------------------------------------------------
// Options. Only the fields the options message itself declares are printed;
// custom options (extensions) stay in the message's unknown fields and are
// left out on purpose, see the top of this file.

/** `option name = value;` statements, for files, messages, enums and oneofs. */
function printOptionStatements<T extends Message>(schema: DescMessage, options: T | undefined): string[] {
  return optionAssignments(schema, options).map((assignment) => `option ${assignment};`);
}

/** ` [name = value, ...]`, for fields, enum values and extension ranges. */
function printOptionList<T extends Message>(schema: DescMessage, options: T | undefined): string {
  const assignments = optionAssignments(schema, options);
  return assignments.length > 0 ? ` [${assignments.join(", ")}]` : "";
}

function optionAssignments<T extends Message>(schema: DescMessage, options: T | undefined): string[] {
  if (options === undefined) {
    return [];
  }
  const r = reflect(schema, options);
  const assignments: string[] = [];
  for (const field of r.fields) {
    if (!r.isSet(field)) {
      continue;
    }
    // A repeated option is written once per element.
    for (const value of fieldValues(r, field)) {
      assignments.push(`${field.name} = ${value}`);
    }
  }
  return assignments;
}

/** The value(s) of a set field in text format; one entry per element of a list. */
function fieldValues(r: ReflectMessage, field: DescField): string[] {
  switch (field.fieldKind) {
    case "scalar":
      return [scalarText(field.scalar, r.get(field))];
    case "enum":
      return [enumText(field.enum, r.get(field))];
    case "message":
      return [messageText(r.get(field))];
    case "list": {
      const values: string[] = [];
      for (const element of r.get(field)) {
        switch (field.listKind) {
          case "scalar":
            values.push(scalarText(field.scalar, element));
            break;
          case "enum":
            values.push(enumText(field.enum, element));
            break;
          case "message":
            values.push(messageText(element as ReflectMessage));
            break;
        }
      }
      return values;
    }
    case "map":
      throw new Error(`${field.toString()}: printing map options is not supported`);
  }
}

/** A message value in text format: `{ a: 1, b: [2, 3], c: { d: true } }`. */
function messageText(r: ReflectMessage): string {
  const entries: string[] = [];
  for (const field of r.fields) {
    if (!r.isSet(field)) {
      continue;
    }
    const values = fieldValues(r, field);
    entries.push(`${field.name}: ${field.fieldKind === "list" ? `[${values.join(", ")}]` : values.join("")}`);
  }
  return entries.length === 0 ? "{}" : `{ ${entries.join(", ")} }`;
}

/** An enum value by name; a number the enum does not declare stays a number. */
function enumText(enumType: DescEnum, value: unknown): string {
  return enumType.values.find((v) => v.number === value)?.name ?? String(value);
}

function scalarText(type: ScalarType, value: unknown): string {
  switch (type) {
    case ScalarType.STRING:
      return quote(String(value));
    case ScalarType.BYTES:
      return quoteBytes(value as Uint8Array);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: {
      const n = Number(value);
      return Number.isNaN(n) ? "nan" : n === Infinity ? "inf" : n === -Infinity ? "-inf" : String(n);
    }
    default:
      return String(value);
  }
}

/** A string literal: printable text as is, everything else escaped. */
function quote(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === "\\") {
      out += `\\${ch}`;
    } else if (ch === "\n") {
      out += "\\n";
    } else if (ch === "\r") {
      out += "\\r";
    } else if (ch === "\t") {
      out += "\\t";
    } else if (code < 0x20 || code === 0x7f) {
      out += `\\${code.toString(8).padStart(3, "0")}`;
    } else {
      out += ch;
    }
  }
  return `${out}"`;
}

function quoteBytes(bytes: Uint8Array): string {
  let out = '"';
  for (const byte of bytes) {
    const ch = String.fromCharCode(byte);
    if (ch === '"' || ch === "\\") {
      out += `\\${ch}`;
    } else if (byte >= 0x20 && byte < 0x7f) {
      out += ch;
    } else {
      out += `\\${byte.toString(8).padStart(3, "0")}`;
    }
  }
  return `${out}"`;
}

main();

/**
 * Nothing in src/ patches another package: no assignments into a package's exports or prototypes, no writes
 * to underscore-prefixed ("internal") fields of objects that are not our own, no module-cache tricks.
 *
 * The broker of v0.1 reached into aedes, mqtt-packet, mqemitter and debug this way (read-batch.ts,
 * packet-limit.ts, outbox.ts, message-emitter.ts, deliver.ts, quiet-debug.ts); each upgrade of a dependency
 * could silently break such a patch. The checker parses every .ts file under src/ with the TypeScript
 * compiler API (names are resolved by the binder, so shadowing is handled) and reports, as file:line:
 *
 * (a) an assignment (`=`, `+=`, `++`, `delete`, destructuring, `Object.assign`, `Object.defineProperty`,
 *     `Reflect.set`...) whose target is a property of a value imported from a package (a non-relative module
 *     specifier, `require('pkg')` or `import('pkg')`), or of something reached through it (`x.a.b = `), also
 *     through local aliases (`const m = pkg as any; m.f = `);
 * (b) the same on a `.prototype` of anything imported (`Duplex.prototype.read = `, `Object.getPrototypeOf`);
 * (c) an assignment to any property whose name starts with `_` on anything but `this` inside a class that is
 *     declared in src (`parser._parseLength = `, `client._parser = `, `internals._do = `);
 * (d) any use of `require.cache` (`require` global or made by `createRequire`), of the `Module._cache`
 *     family, and any write through a value taken from the module cache;
 * (e) `Object.setPrototypeOf`/`Reflect.setPrototypeOf` on a package's value;
 * (f) a function assigned over a method of an object that a package made or typed (a parameter or variable
 *     annotated with a package's type, or the result of calling/constructing a package's export):
 *     `conn.read = function ...` where `conn: Duplex`; `on*` event-handler properties are allowed.
 *
 * The self-test at the end runs the same checker on small in-memory sources that contain each violation,
 * and on clean ones, so that this test can fail.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const REPO_ROOT = join(import.meta.dirname, '../..');
const SRC = join(REPO_ROOT, 'src');

type Rule = 'a' | 'b' | 'c' | 'd' | 'e' | 'f';

interface Finding {
  file: string;
  line: number;
  rule: Rule;
  message: string;
}

/** Where a value comes from, as far as the patching rules care. */
type Origin =
  /** A package's module object or something reached through it (path: the property chain). */
  | { kind: 'import'; module: string; path: string[] }
  /** An object a package made or typed (a parameter `conn: Duplex`, `mqemitter()`, `new Server()`). */
  | { kind: 'instance'; module: string }
  /** A `require` function (global or `createRequire(...)`). */
  | { kind: 'require' }
  /** `require.cache` or anything taken from it. */
  | { kind: 'module-cache' };

/** The value written: an expression, 'function' (a method in an object literal), or unknown. */
type Value = ts.Expression | 'function' | undefined;

const MODULE_MODULES = new Set(['module', 'node:module']);
const MODULE_INTERNALS = new Set(['_cache', '_load', '_resolveFilename', '_extensions', '_pathCache', '_compile', '_findPath', '_nodeModulePaths', '_initPaths']);

function isPackageSpecifier(specifier: string): boolean {
  return !specifier.startsWith('.') && !specifier.startsWith('/');
}

function strip(expr: ts.Expression): ts.Expression {
  let e = expr;
  for (;;) {
    if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e) || ts.isNonNullExpression(e) || ts.isSatisfiesExpression(e) || ts.isTypeAssertionExpression(e)) {
      e = e.expression;
    } else {
      return e;
    }
  }
}

/** The property name of `x.name`, `x['name']`, or undefined when it is computed. */
function accessName(node: ts.PropertyAccessExpression | ts.ElementAccessExpression): string | undefined {
  if (ts.isPropertyAccessExpression(node)) return node.name.text;
  const arg = strip(node.argumentExpression);
  if (ts.isStringLiteralLike(arg) || ts.isNumericLiteral(arg)) return arg.text;
  return undefined;
}

function keyName(expr: ts.Expression | undefined): string | undefined {
  if (expr === undefined) return undefined;
  const e = strip(expr);
  return ts.isStringLiteralLike(e) || ts.isNumericLiteral(e) ? e.text : undefined;
}

function describeExpr(expr: ts.Node, sf: ts.SourceFile): string {
  const text = expr.getText(sf).replace(/\s+/g, ' ');
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

class Checker {
  readonly findings: Finding[] = [];
  private readonly seen = new Set<string>();
  private readonly checker: ts.TypeChecker;

  constructor(private readonly program: ts.Program, private readonly displayName: (fileName: string) => string) {
    this.checker = program.getTypeChecker();
  }

  run(): Finding[] {
    for (const sf of this.program.getSourceFiles()) {
      if (sf.isDeclarationFile && !sf.fileName.endsWith('.d.ts')) continue;
      this.visit(sf, sf);
    }
    return this.findings;
  }

  private report(sf: ts.SourceFile, node: ts.Node, rule: Rule, message: string): void {
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    const file = this.displayName(sf.fileName);
    const key = `${file}:${line}:${rule}:${node.getStart(sf)}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.findings.push({ file, line, rule, message });
  }

  private declarationOf(id: ts.Identifier): ts.Declaration | undefined {
    const symbol = this.checker.getSymbolAtLocation(id);
    return symbol?.declarations?.[0];
  }

  /** The module specifier of an import binding, when `decl` is one. */
  private importedFrom(decl: ts.Declaration): string | undefined {
    let spec: ts.Expression | undefined;
    if (ts.isImportSpecifier(decl)) spec = decl.parent.parent.parent.moduleSpecifier;
    else if (ts.isImportClause(decl)) spec = decl.parent.moduleSpecifier;
    else if (ts.isNamespaceImport(decl)) spec = decl.parent.parent.moduleSpecifier;
    else if (ts.isImportEqualsDeclaration(decl) && ts.isExternalModuleReference(decl.moduleReference)) spec = decl.moduleReference.expression;
    return spec !== undefined && ts.isStringLiteralLike(spec) ? spec.text : undefined;
  }

  /** A type annotation naming a package's type (`Duplex`, `net.Socket`, `Client | undefined`). */
  private typeOrigin(type: ts.TypeNode | undefined): Origin | undefined {
    if (type === undefined) return undefined;
    if (ts.isUnionTypeNode(type) || ts.isIntersectionTypeNode(type)) {
      for (const t of type.types) {
        const o = this.typeOrigin(t);
        if (o) return o;
      }
      return undefined;
    }
    if (ts.isParenthesizedTypeNode(type)) return this.typeOrigin(type.type);
    if (ts.isTypeReferenceNode(type)) {
      let name: ts.EntityName = type.typeName;
      while (ts.isQualifiedName(name)) name = name.left;
      const decl = this.declarationOf(name);
      const module = decl && this.importedFrom(decl);
      if (module !== undefined && isPackageSpecifier(module)) return { kind: 'instance', module };
    }
    return undefined;
  }

  private isGlobal(id: ts.Identifier, name: string): boolean {
    return id.text === name && this.declarationOf(id) === undefined;
  }

  /** Where `expr` comes from (see Origin), following local aliases through their initializers. */
  originOf(expr: ts.Expression, depth = 0): Origin | undefined {
    if (depth > 20) return undefined;
    const e = strip(expr);
    if (ts.isIdentifier(e)) {
      const decl = this.declarationOf(e);
      if (decl === undefined) return e.text === 'require' ? { kind: 'require' } : undefined;
      const module = this.importedFrom(decl);
      if (module !== undefined) {
        if (!isPackageSpecifier(module)) return undefined;
        if (ts.isImportSpecifier(decl) && (decl.propertyName ?? decl.name).text === 'createRequire' && MODULE_MODULES.has(module)) {
          return { kind: 'import', module, path: ['createRequire'] };
        }
        const path = ts.isImportSpecifier(decl) ? [(decl.propertyName ?? decl.name).text] : [];
        return { kind: 'import', module, path };
      }
      if (ts.isVariableDeclaration(decl)) {
        const fromInit = decl.initializer ? this.originOf(decl.initializer, depth + 1) : undefined;
        return fromInit ?? this.typeOrigin(decl.type);
      }
      if (ts.isBindingElement(decl)) {
        // const { a, b: { c } } = pkg  ->  reached through pkg
        let root: ts.Node = decl;
        const path: string[] = [];
        while (ts.isBindingElement(root)) {
          const prop = root.propertyName ?? root.name;
          path.unshift(ts.isIdentifier(prop) ? prop.text : '[...]');
          root = root.parent.parent;
        }
        if (ts.isVariableDeclaration(root) && root.initializer) {
          const o = this.originOf(root.initializer, depth + 1);
          if (o?.kind === 'import') return { ...o, path: [...o.path, ...path] };
          if (o?.kind === 'require' && path[0] === 'cache') return { kind: 'module-cache' };
          if (o?.kind === 'module-cache' || o?.kind === 'instance') return o;
        }
        return undefined;
      }
      if (ts.isParameter(decl)) return this.typeOrigin(decl.type);
      return undefined;
    }
    if (ts.isPropertyAccessExpression(e) || ts.isElementAccessExpression(e)) {
      const name = accessName(e) ?? '[...]';
      const o = this.originOf(e.expression, depth + 1);
      if (o === undefined) {
        // this.socket / internals.conn: the declared type of the member, when it is a package's.
        if (ts.isPropertyAccessExpression(e)) {
          const decl = this.checker.getSymbolAtLocation(e.name)?.declarations?.[0];
          if (decl && (ts.isPropertyDeclaration(decl) || ts.isPropertySignature(decl) || ts.isParameter(decl))) return this.typeOrigin(decl.type);
        }
        return undefined;
      }
      if (o.kind === 'require') return name === 'cache' ? { kind: 'module-cache' } : undefined;
      if (o.kind === 'module-cache' || o.kind === 'instance') return o;
      if (MODULE_MODULES.has(o.module) && MODULE_INTERNALS.has(name)) return { kind: 'module-cache' };
      return { ...o, path: [...o.path, name] };
    }
    if (ts.isAwaitExpression(e)) return this.originOf(e.expression, depth + 1);
    if (ts.isCallExpression(e)) {
      if (e.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const spec = keyName(e.arguments[0]);
        return spec !== undefined && isPackageSpecifier(spec) ? { kind: 'import', module: spec, path: [] } : undefined;
      }
      const callee = strip(e.expression);
      if (ts.isPropertyAccessExpression(callee) && ts.isIdentifier(callee.expression) && this.isGlobal(callee.expression, 'Object') && callee.name.text === 'getPrototypeOf') {
        const arg = e.arguments[0];
        const o = arg && this.originOf(arg, depth + 1);
        if (o?.kind === 'import') return { ...o, path: [...o.path, 'prototype'] };
        return o;
      }
      const c = this.originOf(callee, depth + 1);
      if (c === undefined) return undefined;
      if (c.kind === 'require') {
        const spec = keyName(e.arguments[0]);
        return spec !== undefined && isPackageSpecifier(spec) ? { kind: 'import', module: spec, path: [] } : undefined;
      }
      if (c.kind === 'import' && MODULE_MODULES.has(c.module) && c.path.length === 1 && c.path[0] === 'createRequire') return { kind: 'require' };
      if (c.kind === 'import') return { kind: 'instance', module: c.module };
      return undefined;
    }
    if (ts.isNewExpression(e)) {
      const c = this.originOf(e.expression, depth + 1);
      return c?.kind === 'import' ? { kind: 'instance', module: c.module } : undefined;
    }
    return undefined;
  }

  /** `this` inside a method, constructor, accessor or field of a class declared in this source. */
  private isOwnClassThis(expr: ts.Expression): boolean {
    const e = strip(expr);
    if (e.kind !== ts.SyntaxKind.ThisKeyword) return false;
    let node: ts.Node = e.parent;
    while (node) {
      if (ts.isArrowFunction(node)) {
        node = node.parent;
        continue;
      }
      if (ts.isFunctionDeclaration(node) || ts.isFunctionExpression(node)) return false;
      if (
        ts.isMethodDeclaration(node) ||
        ts.isConstructorDeclaration(node) ||
        ts.isGetAccessorDeclaration(node) ||
        ts.isSetAccessorDeclaration(node) ||
        ts.isPropertyDeclaration(node) ||
        ts.isClassStaticBlockDeclaration(node)
      ) {
        return ts.isClassDeclaration(node.parent) || ts.isClassExpression(node.parent);
      }
      if (ts.isSourceFile(node)) return false;
      node = node.parent;
    }
    return false;
  }

  private isFunctionValue(value: Value): boolean {
    if (value === undefined) return false;
    if (value === 'function') return true;
    const v = strip(value);
    if (ts.isArrowFunction(v) || ts.isFunctionExpression(v)) return true;
    if (ts.isCallExpression(v) && ts.isPropertyAccessExpression(v.expression) && v.expression.name.text === 'bind') return true;
    if (ts.isNewExpression(v) && ts.isIdentifier(v.expression) && this.isGlobal(v.expression, 'Proxy')) return true;
    if (ts.isIdentifier(v)) {
      const decl = this.declarationOf(v);
      if (decl && ts.isFunctionDeclaration(decl)) return true;
      if (decl && ts.isVariableDeclaration(decl) && decl.initializer) {
        const init = strip(decl.initializer);
        return ts.isArrowFunction(init) || ts.isFunctionExpression(init);
      }
    }
    return false;
  }

  /** One write: `object[name] = value` at `site` (name undefined: unknown or all properties). */
  private checkWrite(sf: ts.SourceFile, site: ts.Node, object: ts.Expression, name: string | undefined, value: Value): void {
    const target = `${describeExpr(object, sf)}${name === undefined ? '' : `.${name}`}`;
    const o = this.originOf(object);
    if (o?.kind === 'module-cache') {
      this.report(sf, site, 'd', `writes through the module cache: ${target}`);
    } else if (o?.kind === 'require' && name === 'cache') {
      this.report(sf, site, 'd', `replaces require.cache: ${target}`);
    } else if (o?.kind === 'import' && (name === 'prototype' || o.path.includes('prototype'))) {
      this.report(sf, site, 'b', `assigns to a prototype of "${o.module}": ${target}`);
    } else if (o?.kind === 'import') {
      this.report(sf, site, 'a', `assigns to a property of "${o.module}"${o.path.length ? ` (${o.path.join('.')})` : ''}: ${target}`);
    }
    if (name?.startsWith('_') && !this.isOwnClassThis(object)) {
      this.report(sf, site, 'c', `assigns to an underscore-prefixed field of an object that is not ours: ${target}`);
    }
    if (o?.kind === 'instance' && name !== undefined && !/^on[a-z]/.test(name) && this.isFunctionValue(value)) {
      this.report(sf, site, 'f', `replaces a method of an object made or typed by "${o.module}": ${target}`);
    }
  }

  /** Targets of an assignment's left side (destructuring included). */
  private checkTarget(sf: ts.SourceFile, site: ts.Node, target: ts.Expression, value: ts.Expression | undefined): void {
    const t = strip(target);
    if (ts.isPropertyAccessExpression(t) || ts.isElementAccessExpression(t)) {
      this.checkWrite(sf, site, t.expression, accessName(t), value);
    } else if (ts.isArrayLiteralExpression(t)) {
      for (const el of t.elements) this.checkTarget(sf, site, ts.isSpreadElement(el) ? el.expression : el, undefined);
    } else if (ts.isObjectLiteralExpression(t)) {
      for (const p of t.properties) {
        if (ts.isPropertyAssignment(p)) {
          const init = ts.isBinaryExpression(p.initializer) && p.initializer.operatorToken.kind === ts.SyntaxKind.EqualsToken ? p.initializer.left : p.initializer;
          this.checkTarget(sf, site, init, undefined);
        } else if (ts.isSpreadAssignment(p)) {
          this.checkTarget(sf, site, p.expression, undefined);
        }
      }
    } else if (ts.isBinaryExpression(t) && t.operatorToken.kind === ts.SyntaxKind.EqualsToken) {
      this.checkTarget(sf, site, t.left, undefined); // a default value in a destructuring target
    }
  }

  /** Object.assign / defineProperty / Reflect.set / setPrototypeOf and friends. */
  private checkCall(sf: ts.SourceFile, call: ts.CallExpression): void {
    const callee = strip(call.expression);
    if (!ts.isPropertyAccessExpression(callee) || !ts.isIdentifier(callee.expression)) return;
    const owner = callee.expression;
    const method = callee.name.text;
    const isObject = this.isGlobal(owner, 'Object');
    const isReflect = this.isGlobal(owner, 'Reflect');
    if (!isObject && !isReflect) return;
    const [target, second, third] = call.arguments;
    if (target === undefined) return;
    if ((isObject || isReflect) && method === 'setPrototypeOf') {
      const o = this.originOf(target);
      if (o?.kind === 'import' || o?.kind === 'instance') {
        this.report(sf, call, 'e', `${owner.text}.setPrototypeOf on a value of "${o.module}": ${describeExpr(target, sf)}`);
      }
      return;
    }
    if (isObject && method === 'assign') {
      for (const source of call.arguments.slice(1)) {
        const s = strip(source);
        if (ts.isObjectLiteralExpression(s)) {
          for (const p of s.properties) {
            if (ts.isPropertyAssignment(p) || ts.isMethodDeclaration(p) || ts.isShorthandPropertyAssignment(p)) {
              const name = ts.isIdentifier(p.name) || ts.isStringLiteralLike(p.name) ? p.name.text : undefined;
              const value = ts.isPropertyAssignment(p) ? p.initializer : ts.isMethodDeclaration(p) ? 'function' : p.name;
              this.checkWrite(sf, call, target, name, value);
            } else {
              this.checkWrite(sf, call, target, undefined, undefined);
            }
          }
        } else {
          this.checkWrite(sf, call, target, undefined, undefined);
        }
      }
      return;
    }
    if ((isObject && method === 'defineProperty') || (isReflect && method === 'defineProperty')) {
      let value: Value;
      if (third && ts.isObjectLiteralExpression(strip(third))) {
        for (const p of (strip(third) as ts.ObjectLiteralExpression).properties) {
          if (ts.isPropertyAssignment(p) && ts.isIdentifier(p.name) && ['value', 'get', 'set'].includes(p.name.text)) value = p.initializer;
          if (ts.isMethodDeclaration(p) || ts.isGetAccessorDeclaration(p) || ts.isSetAccessorDeclaration(p)) value = 'function';
        }
      }
      this.checkWrite(sf, call, target, keyName(second), value);
      return;
    }
    if (isObject && method === 'defineProperties' && second) {
      const s = strip(second);
      if (ts.isObjectLiteralExpression(s)) {
        for (const p of s.properties) {
          const name = p.name && (ts.isIdentifier(p.name) || ts.isStringLiteralLike(p.name)) ? p.name.text : undefined;
          this.checkWrite(sf, call, target, name, undefined);
        }
      } else {
        this.checkWrite(sf, call, target, undefined, undefined);
      }
      return;
    }
    if (isReflect && (method === 'set' || method === 'deleteProperty')) {
      this.checkWrite(sf, call, target, keyName(second), third);
    }
  }

  private visit(node: ts.Node, sf: ts.SourceFile): void {
    if (ts.isBinaryExpression(node)) {
      const op = node.operatorToken.kind;
      if (op >= ts.SyntaxKind.FirstAssignment && op <= ts.SyntaxKind.LastAssignment) {
        this.checkTarget(sf, node, node.left, op === ts.SyntaxKind.EqualsToken ? node.right : undefined);
      }
    } else if (
      (ts.isPrefixUnaryExpression(node) || ts.isPostfixUnaryExpression(node)) &&
      (node.operator === ts.SyntaxKind.PlusPlusToken || node.operator === ts.SyntaxKind.MinusMinusToken)
    ) {
      this.checkTarget(sf, node, node.operand, undefined);
    } else if (ts.isDeleteExpression(node)) {
      this.checkTarget(sf, node, node.expression, undefined);
    } else if (ts.isCallExpression(node)) {
      this.checkCall(sf, node);
    } else if ((ts.isForInStatement(node) || ts.isForOfStatement(node)) && !ts.isVariableDeclarationList(node.initializer)) {
      this.checkTarget(sf, node, node.initializer, undefined);
    }
    // (d) any use of require.cache / Module._cache, read or write.
    if (ts.isPropertyAccessExpression(node) || ts.isElementAccessExpression(node)) {
      const name = accessName(node);
      if (name === 'cache' || (name !== undefined && MODULE_INTERNALS.has(name))) {
        const o = this.originOf(node.expression);
        if ((o?.kind === 'require' && name === 'cache') || (o?.kind === 'import' && MODULE_MODULES.has(o.module) && MODULE_INTERNALS.has(name))) {
          this.report(sf, node, 'd', `uses the module cache: ${describeExpr(node, sf)}`);
        }
      }
    }
    ts.forEachChild(node, (child) => this.visit(child, sf));
  }
}

const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  noResolve: true,
  noLib: true,
  types: [],
  allowJs: false,
  noEmit: true,
};

/** Check sources given as file name -> text (names are only used for the report). */
function checkSources(files: ReadonlyMap<string, string>, displayName: (fileName: string) => string = (f) => f): Finding[] {
  const sourceFiles = new Map<string, ts.SourceFile>();
  for (const [name, text] of files) sourceFiles.set(name, ts.createSourceFile(name, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS));
  const host: ts.CompilerHost = {
    getSourceFile: (fileName) => sourceFiles.get(fileName),
    getDefaultLibFileName: () => 'lib.d.ts',
    writeFile: () => undefined,
    getCurrentDirectory: () => '/',
    getCanonicalFileName: (f) => f,
    useCaseSensitiveFileNames: () => true,
    getNewLine: () => '\n',
    fileExists: (f) => sourceFiles.has(f),
    readFile: (f) => files.get(f),
  };
  const program = ts.createProgram({ rootNames: [...files.keys()], options: COMPILER_OPTIONS, host });
  const findings = new Checker(program, displayName).run();
  return findings.sort((x, y) => x.file.localeCompare(y.file) || x.line - y.line || x.rule.localeCompare(y.rule));
}

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(path));
    else if (entry.isFile() && entry.name.endsWith('.ts')) out.push(path);
  }
  return out.sort();
}

/** Check every .ts file under `dir` (default src/) as it is on disk now. */
function checkTree(dir = SRC): { files: number; findings: Finding[] } {
  const files = new Map<string, string>();
  for (const path of listTs(dir)) files.set(path, readFileSync(path, 'utf8'));
  return { files: files.size, findings: checkSources(files, (f) => relative(REPO_ROOT, f)) };
}

function formatFindings(findings: readonly Finding[]): string {
  return findings.map((f) => `${f.file}:${f.line} (${f.rule}) ${f.message}`).join('\n');
}

/**
 * Configuration points a package documents as the way to configure it, each with where it says so. Only
 * assignments into exactly these objects are accepted; everything else a package exports stays off limits.
 */
const DOCUMENTED_CONFIGURATION = [
  {
    // acme-client README, "HTTP client defaults": it "exposes the client instance through `.axios`" and
    // shows `acme.axios.defaults.proxy = ...` to change the default axios configuration; `acmeSettings`
    // is acme-client's own part of those defaults (retries). It has no per-client HTTP options.
    module: 'acme-client',
    objects: ['axios.defaults', 'axios.defaults.acmeSettings'],
  },
] as const;

function documented(finding: Finding): boolean {
  return DOCUMENTED_CONFIGURATION.some((d) => d.objects.some((o) => finding.rule === 'a' && finding.message.startsWith(`assigns to a property of "${d.module}" (${o}): `)));
}

describe('no patching of other packages in src/', () => {
  it('finds no assignment into a package, its prototypes or internals, and no module-cache use', () => {
    const { files, findings } = checkTree();
    expect(files).toBeGreaterThan(10);
    const undocumented = findings.filter((f) => !documented(f));
    expect(undocumented, `\n${formatFindings(undocumented)}\n`).toEqual([]);
  });

  it('accepts only the documented configuration objects, and only by their exact names', () => {
    const ok: Finding = { file: '/x.ts', line: 1, rule: 'a', message: 'assigns to a property of "acme-client" (axios.defaults): ax.defaults.timeout' };
    expect(documented(ok)).toBe(true);
    expect(documented({ ...ok, message: 'assigns to a property of "acme-client" (axios.interceptors): ax.interceptors.x' })).toBe(false);
    expect(documented({ ...ok, message: 'assigns to a property of "mqtt-packet" (axios.defaults): x' })).toBe(false);
    expect(documented({ ...ok, rule: 'c' })).toBe(false);
  });
});

/** Each snippet (a file of its own) and the rules it must trip; [] = must pass. */
const SNIPPETS: { name: string; rules: Rule[]; code: string }[] = [
  // (a)
  { name: 'default import, property replaced', rules: ['a'], code: `import mqttPacket from 'mqtt-packet';\nmqttPacket.writeToStream = () => true;` },
  { name: 'namespace import, nested property', rules: ['a'], code: `import * as x from 'pkg';\nx.a.b = 1;` },
  { name: 'named import, compound assignment', rules: ['a'], code: `import { counter } from 'pkg';\ncounter.value += 1;` },
  { name: 'alias through a cast', rules: ['a'], code: `import mqttPacket from 'mqtt-packet';\nconst m = mqttPacket as unknown as { f: () => void };\nm.f = () => undefined;` },
  { name: 'alias of a property, then a flag on it', rules: ['a'], code: `import mqttPacket from 'mqtt-packet';\nconst original = mqttPacket.writeToStream;\n(original as unknown as { cacheNumbers: boolean }).cacheNumbers = false;` },
  { name: 'destructured import', rules: ['a'], code: `import pkg from 'pkg';\nconst { inner } = pkg;\ninner.x = 1;` },
  { name: 'Object.assign on an import', rules: ['a'], code: `import pkg from 'pkg';\nObject.assign(pkg, { f() { return 1; } });` },
  { name: 'Object.defineProperty on an import', rules: ['a'], code: `import pkg from 'pkg';\nObject.defineProperty(pkg, 'f', { value: 1 });` },
  { name: 'Reflect.set on an import', rules: ['a'], code: `import pkg from 'pkg';\nReflect.set(pkg, 'f', 1);` },
  { name: 'delete on an import', rules: ['a'], code: `import pkg from 'pkg';\ndelete pkg.f;` },
  { name: 'increment on an import', rules: ['a'], code: `import pkg from 'pkg';\npkg.n++;` },
  { name: 'destructuring assignment into an import', rules: ['a'], code: `import pkg from 'pkg';\nlet v = 0;\n[pkg.a, v] = [1, 2];\n({ k: pkg.b } = { k: v });` },
  { name: 'require from createRequire', rules: ['a'], code: `import { createRequire } from 'node:module';\nconst req = createRequire(import.meta.url);\nconst dbg = req('debug');\ndbg.enable = () => undefined;` },
  { name: 'dynamic import', rules: ['a'], code: `const mod = await import('pkg');\nmod.default.x = 1;` },
  { name: 'import = require', rules: ['a'], code: `import pkg = require('pkg');\npkg.x = 1;` },
  { name: 'node builtin', rules: ['a'], code: `import fs from 'node:fs';\nfs.readFile = fs.readFile;` },
  // (b)
  { name: 'prototype of an imported class', rules: ['b'], code: `import { Duplex } from 'node:stream';\nDuplex.prototype.read = function () { return null; };` },
  { name: 'prototype through an alias', rules: ['b'], code: `import { Socket } from 'node:net';\nconst proto = Socket.prototype;\nproto.write = () => true;` },
  { name: 'prototype through Object.getPrototypeOf', rules: ['b'], code: `import pkg from 'pkg';\nObject.getPrototypeOf(pkg).x = 1;` },
  { name: 'Object.assign on a prototype', rules: ['b'], code: `import { Writable } from 'node:stream';\nObject.assign(Writable.prototype, { extra: 1 });` },
  // (c)
  { name: 'underscore field of a parser', rules: ['c'], code: `export function f(parser: { _parseLength(): boolean }) {\n  parser._parseLength = () => false;\n}` },
  { name: 'underscore field of a cast client', rules: ['c'], code: `export function f(client: object) {\n  (client as { _parser?: unknown })._parser = {};\n}` },
  { name: 'underscore field via an alias', rules: ['c'], code: `export function f(mq: object) {\n  const internals = mq as unknown as { _do: () => void };\n  internals._do = () => undefined;\n}` },
  { name: 'underscore field in element form', rules: ['c'], code: `export function f(o: Record<string, unknown>) {\n  o['_state'] = 1;\n}` },
  { name: 'this in a plain function is not a class', rules: ['c'], code: `export function f(this: { _x: number }) {\n  this._x = 1;\n}` },
  { name: 'this in an object literal method', rules: ['c'], code: `export const o = { _x: 0, m() { this._x = 1; } };` },
  { name: 'underscore field of an import', rules: ['a', 'c'], code: `import pkg from 'pkg';\npkg._internal = 1;` },
  { name: 'defineProperty of an underscore field', rules: ['c'], code: `export function f(o: object) {\n  Object.defineProperty(o, '_hidden', { value: 1 });\n}` },
  // (d)
  { name: 'require.cache read', rules: ['d'], code: `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nexport const entry = require.cache[require.resolve('debug')];` },
  { name: 'require.cache write through an alias', rules: ['d'], code: `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nconst cached = require.cache['x'];\nif (cached) cached.exports = {};` },
  { name: 'createRequire(...).cache', rules: ['d'], code: `import { createRequire } from 'node:module';\nexport const c = createRequire(import.meta.url).cache;` },
  { name: 'global require.cache', rules: ['d'], code: `delete require.cache['x'];` },
  { name: 'Module._cache', rules: ['d'], code: `import Module from 'node:module';\nexport const c = (Module as unknown as { _cache: object })._cache;` },
  // (e)
  { name: 'setPrototypeOf on an import', rules: ['e'], code: `import pkg from 'pkg';\nObject.setPrototypeOf(pkg, null);` },
  { name: 'Reflect.setPrototypeOf on an imported class', rules: ['e'], code: `import { Socket } from 'node:net';\nReflect.setPrototypeOf(Socket, {});` },
  // (f)
  { name: 'method of a typed parameter replaced', rules: ['f'], code: `import type { Duplex } from 'node:stream';\nexport function f(conn: Duplex) {\n  const read = conn.read;\n  conn.read = function limited(this: Duplex, n?: number) { return read.call(this, n); };\n}` },
  { name: 'method of a package-made object replaced', rules: ['f'], code: `import mqemitter from 'mqemitter';\nconst mq = mqemitter();\nmq.emit = () => mq;` },
  { name: 'method of a member typed by a package', rules: ['f'], code: `import type { Socket } from 'node:net';\ninterface Inner { conn: Socket }\nexport function f(c: Inner) {\n  c.conn.write = () => true;\n}` },
  // clean
  { name: 'own class fields with underscores', rules: [], code: `import { Writable } from 'node:stream';\nexport class Sink extends Writable {\n  private _n = 0;\n  constructor() { super(); this._n = 1; const f = () => { this._n += 1; }; f(); }\n  override _write(_c: Buffer, _e: string, cb: () => void): void { this._n++; cb(); }\n}` },
  { name: 'options on a package-made server', rules: [], code: `import net from 'node:net';\nconst server = net.createServer();\nserver.maxConnections = 100;` },
  { name: 'fields of a typed response', rules: [], code: `import type { ServerResponse } from 'node:http';\nexport function f(res: ServerResponse) {\n  res.statusCode = 404;\n}` },
  { name: 'event handler property', rules: [], code: `import WebSocket from 'ws';\nconst ws = new WebSocket('ws://127.0.0.1:1');\nws.onmessage = () => undefined;` },
  { name: 'relative import', rules: [], code: `import conf from './conf.js';\nconf.a = 1;\nObject.assign(conf, { b: 2 });` },
  { name: 'a parameter shadows an import', rules: [], code: `import x from 'pkg';\nexport function f(x: { a: number }) {\n  x.a = 1;\n}\nexport const y = x;` },
  { name: 'local objects and copies of package data', rules: [], code: `import pkg from 'pkg';\nconst copy = { ...pkg };\ncopy.a = 1;\nconst config: Record<string, unknown> = {};\nObject.assign(config, { a: 1 });\nconfig.b = 2;` },
  { name: 'createRequire without the cache', rules: [], code: `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nexport const id = require.resolve('debug');\nexport const cache = new Map(); cache.set('a', 1);\nconst other = { cache: {} as Record<string, number> }; other.cache.a = 1;` },
  { name: 'setPrototypeOf on own objects', rules: [], code: `import { EventEmitter } from 'node:events';\nconst o = {};\nObject.setPrototypeOf(o, EventEmitter.prototype);` },
  { name: 'a Buffer from a package written into', rules: [], code: `import mqttPacket from 'mqtt-packet';\nconst buf = mqttPacket.generate({ cmd: 'pingreq' });\nbuf[0] = 0xc0;` },
];

describe('the patching checker (self-test)', () => {
  it.each(SNIPPETS.map((s) => [s.name, s] as const))('%s', (_name, snippet) => {
    const findings = checkSources(new Map([['/snippet.ts', snippet.code]]));
    const rules = [...new Set(findings.map((f) => f.rule))].sort();
    expect(rules, formatFindings(findings)).toEqual([...snippet.rules].sort());
    for (const f of findings) expect(f.line).toBeGreaterThan(0);
  });

  it('reports file and line', () => {
    const findings = checkSources(
      new Map([
        ['/a.ts', `import pkg from 'pkg';\n\n\npkg.x = 1;\n`],
        ['/b.ts', `export const ok = 1;\n`],
      ]),
    );
    expect(findings).toEqual([{ file: '/a.ts', line: 4, rule: 'a', message: expect.stringContaining('"pkg"') as unknown as string }]);
    expect(formatFindings(findings)).toMatch(/^\/a\.ts:4 \(a\) /);
  });
});

// URNs and aliases as the Pulumi engine computes them, ported from pulumi/pulumi:
//
// - newUrn: sdk/go/common/resource/urn/urn.go, New (resource.NewURN's body): the qualified type
//   is the parent's qualified type, `$`, the type; the root stack type is never a prefix.
// - generateUrn: pkg/resource/deploy/deployment.go, (*Deployment).generateURN: the parent's FULL
//   qualified type (the whole chain, not only its last segment as the SDK's MockMonitor.newUrn has it).
// - createUrn: sdk/go/common/resource/alias.go, CreateURN (an alias spec with a parent).
// - collapseAliasToUrn, inheritedChildAlias, generateAliases: pkg/resource/deploy/step_generator.go,
//   the stepGenerator methods of the same names. The Node SDK sends each `aliases` entry as an
//   Alias.Spec (sdk/nodejs/runtime/resource.ts, mapAliasesForRequest: name, type, stack, project,
//   and parentUrn, or noParent for `parent: undefined`, or the resource's own parent when the
//   alias names none), and the engine turns specs into URNs here (pkg/resource/deploy/
//   source_eval.go, RegisterResource: Alias_Spec_ParentUrn / Alias_Spec_NoParent).

export type Urn = string;

/** tokens.RootStackType: never part of a child's qualified type. */
export const ROOT_STACK_TYPE = "pulumi:pulumi:Stack";

const NAME_DELIMITER = "::";
const TYPE_DELIMITER = "$";

/** urn.New */
export function newUrn(
  stack: string,
  project: string,
  parentType: string,
  baseType: string,
  name: string,
): Urn {
  let typ = baseType;
  if (parentType !== "" && parentType !== ROOT_STACK_TYPE) typ = parentType + TYPE_DELIMITER + typ;
  return `urn:pulumi:${stack}${NAME_DELIMITER}${project}${NAME_DELIMITER}${typ}${NAME_DELIMITER}${name}`;
}

/** URN.QualifiedType: the third field (the parent chain, `$`, the type). */
export function qualifiedType(urn: Urn): string {
  return urn.split(NAME_DELIMITER)[2] ?? "";
}

/** URN.Type: the last segment of the qualified type. */
export function urnType(urn: Urn): string {
  return qualifiedType(urn).split(TYPE_DELIMITER).pop() ?? "";
}

/** URN.Name: everything after the third delimiter (a name may itself contain `::`). */
export function urnName(urn: Urn): string {
  return urn.split(NAME_DELIMITER).slice(3).join(NAME_DELIMITER);
}

/** (*Deployment).generateURN */
export function generateUrn(
  stack: string,
  project: string,
  parent: Urn,
  type: string,
  name: string,
): Urn {
  let parentType = "";
  if (parent !== "" && qualifiedType(parent) !== ROOT_STACK_TYPE)
    parentType = qualifiedType(parent);
  return newUrn(stack, project, parentType, type, name);
}

/** alias.go CreateURN */
export function createUrn(
  name: string,
  type: string,
  parent: Urn,
  project: string,
  stack: string,
): Urn {
  let parentPrefix: string;
  if (parent === "") {
    parentPrefix = `urn:pulumi:${stack}::${project}::`;
  } else {
    const ix = parent.lastIndexOf("::");
    if (ix === -1) throw new Error(`Expected 'parent' string '${parent}' to contain '::'`);
    parentPrefix = parent.slice(0, ix) + "$";
  }
  return `${parentPrefix}${type}::${name}`;
}

/** An alias as the engine holds it after RegisterResource (resource.Alias). */
export interface Alias {
  urn?: Urn;
  name?: string;
  type?: string;
  project?: string;
  stack?: string;
  parent?: Urn;
  noParent?: boolean;
}

/**
 * The step generator's alias bookkeeping for one deployment: `aliases` maps a resource's new URN
 * to the old URN it was found under (stepGenerator.aliases).
 */
export class AliasResolver {
  readonly aliases = new Map<Urn, Urn>();

  constructor(
    private readonly stack: string,
    private readonly project: string,
  ) {}

  /** stepGenerator.collapseAliasToUrn */
  collapseAliasToUrn(name: string, typ: string, resParent: Urn, alias: Alias): Urn {
    if (alias.urn) return alias.urn;
    const n = alias.name || name;
    const t = alias.type || typ;
    let parent = alias.parent ?? "";
    if (parent === "") {
      parent = resParent;
    } else {
      // If the parent used an alias then use its old URN: that is this resource's old URN too.
      const parentAlias = this.aliases.get(parent);
      if (parentAlias !== undefined) parent = parentAlias;
    }
    const parentIsRootStack = parent !== "" && qualifiedType(parent) === ROOT_STACK_TYPE;
    if (alias.noParent || parentIsRootStack) parent = "";
    const project = alias.project || this.project;
    const stack = alias.stack || this.stack;
    return createUrn(n, t, parent, project, stack);
  }

  /** stepGenerator.inheritedChildAlias: `{parent}-suffix` children follow a renamed parent. */
  inheritedChildAlias(
    childType: string,
    childName: string,
    parentName: string,
    parentAlias: Urn,
  ): Urn {
    let aliasName = childName;
    if (childName.startsWith(parentName)) {
      aliasName = urnName(parentAlias) + childName.slice(parentName.length);
    }
    return newUrn(this.stack, this.project, qualifiedType(parentAlias), childType, aliasName);
  }

  /** stepGenerator.generateAliases: the resource's own aliases, then its parent's multiplied out. */
  generateAliases(name: string, typ: string, parent: Urn, resAliases: Alias[]): Urn[] {
    const result: Urn[] = [];
    const add = (alias: Urn) => {
      if (!result.includes(alias)) result.push(alias);
    };
    for (const alias of resAliases) add(this.collapseAliasToUrn(name, typ, parent, alias));
    if (parent !== "") {
      const parentAlias = this.aliases.get(parent);
      if (parentAlias !== undefined) {
        add(this.inheritedChildAlias(typ, name, urnName(parent), parentAlias));
        for (const alias of resAliases) {
          const childAlias = this.collapseAliasToUrn(name, typ, parent, alias);
          add(
            this.inheritedChildAlias(
              urnType(childAlias),
              urnName(childAlias),
              urnName(parent),
              parentAlias,
            ),
          );
        }
      }
    }
    return result;
  }

  /**
   * stepGenerator.getOldResource: the old state under the URN first, then under each alias. A hit
   * through an alias is recorded, so children inherit it; an alias claimed twice is an error.
   */
  getOldResource<T>(
    olds: ReadonlyMap<Urn, T>,
    seen: ReadonlySet<Urn>,
    aliased: Map<Urn, Urn>,
    urn: Urn,
    name: string,
    typ: string,
    parent: Urn,
    resAliases: Alias[],
  ): { old?: T; alias?: Urn } {
    const aliases = this.generateAliases(name, typ, parent, resAliases);
    if (aliased.has(urn)) {
      // diag.GetDuplicateResourceAliasedError
      throw new Error(
        `Duplicate resource URN '${urn}' conflicting with alias on resource with URN '${aliased.get(urn)}'`,
      );
    }
    for (const urnOrAlias of [urn, ...aliases]) {
      const old = olds.get(urnOrAlias);
      if (old === undefined) continue;
      if (urnOrAlias !== urn) {
        if (seen.has(urnOrAlias) || aliased.has(urnOrAlias)) {
          // diag.GetDuplicateResourceAliasError
          throw new Error(
            `Duplicate resource alias '${urnOrAlias}' applied to resource with URN '${urn}' conflicting with resource with URN '${aliased.get(urnOrAlias) ?? urnOrAlias}'`,
          );
        }
        aliased.set(urnOrAlias, urn);
        this.aliases.set(urn, urnOrAlias);
        return { old, alias: urnOrAlias };
      }
      return { old };
    }
    return {};
  }
}

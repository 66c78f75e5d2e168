#!/usr/bin/env python3
"""Generates the H.323 schema table and typed Swift structures from the ITU ASN.1 modules.

    python3 scripts/h323/gen_h323.py [../shared/asn1]

Input: the module texts in <asn1>/modules (H.225.0 v7, H.245 v15, H.235.0), parsed with
asn1tools through <asn1>/h323_asn.py (parser only: the encoding rules are ours, in
Sources/PER). Output, committed so that building needs no Python:
  Sources/H323/Generated/H323Schema.generated.swift   every type as a PERType value
  Sources/H323/Generated/H323Types.generated.swift    Swift structs/enums + conversions
Re-run after changing this script; the outputs are never edited by hand.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, '..', '..'))
ASN1 = sys.argv[1] if len(sys.argv) > 1 else next(
    (p for p in (os.path.join(REPO, '..', 'shared', 'asn1'), os.path.join(REPO, '..', '..', 'shared', 'asn1'))
     if os.path.exists(os.path.join(p, 'h323_asn.py'))), os.path.join(REPO, '..', 'shared', 'asn1'))
sys.path.insert(0, ASN1)
import h323_asn  # noqa: E402

spec, _ = h323_asn.parse()
MODULES = ['H323-MESSAGES', 'MULTIMEDIA-SYSTEM-CONTROL', 'H235-SECURITY-MESSAGES']
PREFIX = {'H323-MESSAGES': '', 'MULTIMEDIA-SYSTEM-CONTROL': 'H245', 'H235-SECURITY-MESSAGES': 'H235'}
SWIFT_KEYWORDS = {'protocol', 'default', 'class', 'struct', 'enum', 'case', 'switch', 'in', 'is', 'as',
                  'self', 'Self', 'true', 'false', 'nil', 'init', 'extension', 'func', 'var', 'let',
                  'return', 'repeat', 'while', 'for', 'if', 'else', 'import', 'public', 'private',
                  'internal', 'static', 'operator', 'where', 'throws', 'throw', 'try', 'catch',
                  'do', 'break', 'continue', 'fallthrough', 'guard', 'defer', 'subscript',
                  'typealias', 'associatedtype', 'inout', 'any', 'some', 'Type', 'Any', 'super'}
# Swift names that would clash with a module name or a standard-library generic name.
RENAMES = {'Element': 'H235Element', 'Endpoint': 'H225Endpoint'}

# Every named type gets an index in the schema table.
order = []
for module in MODULES:
    for name in spec[module]['types']:
        order.append((module, name))
index_of = {key: i for i, key in enumerate(order)}
counts = {}
for module, name in order:
    counts[name] = counts.get(name, 0) + 1


def camel_upper(text):
    parts = re.split(r'[-_ ]', text)
    out = ''.join(p[:1].upper() + p[1:] for p in parts if p)
    return out


def camel_lower(text):
    upper = camel_upper(text)
    # keep acronyms readable: "h323-uu-pdu" -> "h323UuPdu"
    first = text.split('-')[0]
    name = first[:1].lower() + first[1:] + ''.join(p[:1].upper() + p[1:] for p in text.split('-')[1:] if p)
    if name in SWIFT_KEYWORDS:
        return '`%s`' % name
    return name


def swift_type_name(module, name):
    base = camel_upper(name)
    if name in RENAMES:
        return RENAMES[name]
    if counts[name] > 1 and PREFIX[module]:
        base = PREFIX[module] + base
    return base


def resolve(module, name):
    """The (module, name) a type reference means, seen from `module`."""
    if name in spec[module]['types']:
        return (module, name)
    for other, names in spec[module].get('imports', {}).items():
        if name in names and name in spec[other]['types']:
            return (other, name)
    for other in MODULES:
        if name in spec[other]['types']:
            return (other, name)
    raise KeyError('%s: unresolved type %s' % (module, name))


BUILTIN = {'NULL', 'BOOLEAN', 'INTEGER', 'ENUMERATED', 'BIT STRING', 'OCTET STRING', 'OBJECT IDENTIFIER',
           'IA5String', 'BMPString', 'NumericString', 'PrintableString', 'VisibleString', 'GeneralString',
           'SEQUENCE', 'CHOICE', 'SEQUENCE OF', 'SET OF', 'OpenType', 'SET'}


def size_expr(node):
    size = node.get('size')
    if not size:
        return None
    ext = None in size
    ranges = [r for r in size if r is not None]
    assert len(ranges) == 1, node
    r = ranges[0]
    if isinstance(r, (list, tuple)):
        lo, hi = r
    else:
        lo = hi = r
    hi = 'nil' if hi == 'MAX' else hi
    return 'PERSize(%s, %s%s)' % (lo, hi, ', extensible: true' if ext else '')


def integer_expr(node):
    rt = node.get('restricted-to')
    if not rt:
        return '.integer(.unconstrained)'
    ext = None in rt
    ranges = [r for r in rt if r is not None]
    assert len(ranges) == 1, node
    r = ranges[0]
    lo, hi = (r if isinstance(r, (list, tuple)) else (r, r))
    lo = 'nil' if lo == 'MIN' else lo
    hi = 'nil' if hi == 'MAX' else hi
    return '.integer(PERIntegerRange(%s, %s%s))' % (lo, hi, ', extensible: true' if ext else '')


def split_members(members):
    """Root members and additions (None when there is no extension marker)."""
    root, additions, seen = [], None, 0
    for m in members:
        if m is None:
            seen += 1
            if additions is None:
                additions = []
            continue
        if seen == 1:
            additions.append(m)
        else:
            root.append(m)
    return root, additions


def string_lit(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def type_expr(node, module, params, context):
    t = node['type']
    if t in params:
        return '.openType'
    if t == 'NULL':
        return '.null'
    if t == 'BOOLEAN':
        return '.boolean'
    if t == 'INTEGER':
        return integer_expr(node)
    if t == 'ENUMERATED':
        root, additions = [], None
        for v in node['values']:
            if v is None:
                additions = []
                continue
            (additions if additions is not None else root).append(v)
        root = [v[0] for v in sorted(root, key=lambda v: v[1])]
        adds = 'nil' if additions is None else '[%s]' % ', '.join(string_lit(v[0]) for v in additions)
        return '.enumerated(PEREnumeratedType(root: [%s], additions: %s))' % (
            ', '.join(string_lit(v) for v in root), adds)
    if t == 'BIT STRING':
        return '.bitString(%s)' % (size_expr(node) or '.unconstrained')
    if t == 'OCTET STRING':
        return '.octetString(%s)' % (size_expr(node) or '.unconstrained')
    if t == 'OBJECT IDENTIFIER':
        return '.objectIdentifier'
    if t in ('IA5String', 'BMPString', 'NumericString', 'PrintableString', 'VisibleString'):
        kind = {'IA5String': '.ia5', 'BMPString': '.bmp', 'NumericString': '.numeric',
                'PrintableString': '.printable', 'VisibleString': '.visible'}[t]
        args = [kind, 'size: ' + (size_expr(node) or '.unconstrained')]
        if node.get('from'):
            chars = ''
            for lo, hi in node['from']:
                for c in range(ord(lo), ord(hi) + 1):
                    chars += chr(c)
            args.append('from: ' + string_lit(chars))
        return '.characterString(PERCharacterStringType(%s))' % ', '.join(args)
    if t == 'GeneralString':
        return '.generalString'
    if t == 'OpenType':
        return '.openType'
    if t in ('SEQUENCE', 'SET'):
        root, additions = split_members(node['members'])
        r = ', '.join(member_expr(m, module, params, context) for m in root)
        a = 'nil' if additions is None else '[%s]' % ', '.join(
            member_expr(m, module, params, context) for m in additions)
        return '.sequence(PERSequenceType(%s, root: [%s], additions: %s))' % (string_lit(context), r, a)
    if t == 'CHOICE':
        root, additions = split_members(node['members'])
        r = ', '.join(member_expr(m, module, params, context) for m in root)
        a = 'nil' if additions is None else '[%s]' % ', '.join(
            member_expr(m, module, params, context) for m in additions)
        return '.choice(PERChoiceType(%s, root: [%s], additions: %s))' % (string_lit(context), r, a)
    if t in ('SEQUENCE OF', 'SET OF'):
        element = type_expr(node['element'], module, params, context + '[]')
        return '.sequenceOf(PERSequenceOfType(%s, size: %s))' % (element, size_expr(node) or '.unconstrained')
    # A reference to a named type (a parameterized one becomes its own body, with the
    # parameter as an open type: every actual parameter in these modules is an open type).
    target = resolve(module, t)
    if any(k in node for k in ('size', 'restricted-to', 'from')):
        # A constraint on a reference (TBCD-STRING (SIZE (3..16))): the named type with the
        # constraint applied, written out in place.
        merged = dict(spec[target[0]]['types'][target[1]])
        merged.update({k: node[k] for k in ('size', 'restricted-to', 'from') if k in node})
        return type_expr(merged, target[0], params, context)
    return '.reference(%d)' % index_of[target]


def member_expr(m, module, params, context):
    return 'PERMember(%s, %s%s)' % (string_lit(m['name']), type_expr(m, module, params, context + '.' + m['name']),
                                    ', optional: true' if m.get('optional') else '')


def gen_schema():
    lines = ['// Generated by scripts/h323/gen_h323.py from the ITU-T modules H.225.0 v7 (H323-MESSAGES),',
             '// H.245 v15 (MULTIMEDIA-SYSTEM-CONTROL) and H.235.0 (H235-SECURITY-MESSAGES). Do not edit.',
             'import PER', '',
             'enum H323SchemaTable {',
             '    static let names: [String] = [']
    for module, name in order:
        lines.append('        %s,' % string_lit('%s.%s' % (module, name)))
    lines.append('    ]')
    lines.append('')
    # Runs once at start-up; optimising this one huge function costs minutes of
    # release build time for nothing.
    lines.append('    @_optimize(none)')
    # One small function per type: a single huge function makes the optimiser superlinear.
    lines.append('    static func build() -> [PERType] {')
    lines.append('        let makers: [() -> PERType] = [')
    for module, name in order:
        lines.append('            t%d,' % index_of[(module, name)])
    lines.append('        ]')
    lines.append('        return makers.map { $0() }')
    lines.append('    }')
    for module, name in order:
        node = spec[module]['types'][name]
        params = node.get('parameters', [])
        lines.append('')
        lines.append('    /// %s.%s' % (module, name))
        lines.append('    static func t%d() -> PERType {' % index_of[(module, name)])
        lines.append('        %s' % type_expr(node, module, params, name))
        lines.append('    }')
    lines.append('}')
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------- typed Swift

PRIMITIVE_SWIFT = {'NULL': 'PERNull', 'BOOLEAN': 'Bool', 'INTEGER': 'Int', 'BIT STRING': 'PERBitString',
                   'OCTET STRING': '[UInt8]', 'OBJECT IDENTIFIER': 'PERObjectIdentifier',
                   'IA5String': 'String', 'BMPString': 'String', 'NumericString': 'String',
                   'PrintableString': 'String', 'VisibleString': 'String', 'GeneralString': 'String',
                   'OpenType': '[UInt8]'}

decls = []  # (indent-free) Swift source blocks

# H.245 types outside what an audio H.323 endpoint uses (video, data, H.223/H.222, modes,
# conference control, multilink, encryption): no Swift type; fields of these types are the
# generic PERValue. They are still in the schema, so they encode and decode fully.
OPAQUE_H245 = re.compile(
    r'^(VideoCapability|ExtendedVideoCapability|H261Video|H262Video|H263|IS11172|IS13818|VideoMode|'
    r'EnhancementLayerInfo|BEnhancementParameters|EnhancementOptions|TransparencyParameters|'
    r'RefPictureSelection|CustomPicture|DataApplicationCapability|DataProtocolCapability|DataMode|'
    r'T38Fax|T84Profile|V42bis|CompressionType|H222|H223|V76|V75|VCCapability|MultiplexEntry|'
    r'RequestMultiplexEntry|MultiplexElement|RequestMode|ModeDescription|ModeElement|H235Mode|'
    r'MultiplexedStream|RedundancyEncodingDTMode|MultiplePayloadStreamMode|MultiplePayloadStreamElementMode|'
    r'DepFECMode|FECMode|H2250ModeParameters|RedundancyEncodingMode|AudioMode|G7231AnnexCMode|VBDMode|'
    r'EncryptionMode|MaintenanceLoop|CommunicationMode|ConferenceRequest|ConferenceResponse|'
    r'ConferenceCommand|ConferenceIndication|CertSelectionCriteria|Criteria|RemoteMC|Multilink|'
    r'DialingInformation|LogicalChannelRate|NewATMVC|MobileMultilink|EncryptionUpdate|VideoIndicateCompose|'
    r'TerminalYouAreSeeing|MCLocationIndication|RequestAllTerminalIDsResponse|TerminalInformation|'
    r'SubstituteConferenceIDCommand|KeyProtectionMethod|PictureReference|Q2931Address|ATMParameters|'
    r'EncryptionAuthenticationAndIntegrity|EncryptionCapability|MediaEncryptionAlgorithm|'
    r'AuthenticationCapability|IntegrityCapability|H235SecurityCapability|H235Media|ConferenceCapability|'
    r'DepFEC|FECCapability|FECData|MultiplePayloadStream|RTPH263|EscrowData)')


def is_opaque(module, name):
    return module == 'MULTIMEDIA-SYSTEM-CONTROL' and OPAQUE_H245.match(name) is not None


def swift_for(node, module, params, owner, member_name, nested):
    """Swift type for a node; anonymous constructed types are added to `nested`."""
    t = node['type']
    if t in params:
        return '[UInt8]'
    if t in PRIMITIVE_SWIFT:
        return PRIMITIVE_SWIFT[t]
    if t in ('SEQUENCE', 'SET', 'CHOICE', 'ENUMERATED'):
        name = camel_upper(member_name)
        if name in ('Type', 'Element', 'Self', 'Protocol'):
            name = name + 'Value'
        nested.append((name, node))
        return owner + '.' + name
    if t in ('SEQUENCE OF', 'SET OF'):
        return '[%s]' % swift_for(node['element'], module, params, owner, member_name + 'Element', nested)
    target = resolve(module, t)
    if is_opaque(*target):
        return 'PERValue'
    return swift_type_name(*target)


def gen_type(swift_name, node, module, params, asn_name, indent, top_level_index):
    """Swift declaration for one type; returns lines."""
    t = node['type']
    pad = ' ' * indent
    out = []
    nested = []
    message_conformance = ', H323Message' if top_level_index is not None else ''
    if t in ('SEQUENCE', 'SET'):
        root, additions = split_members(node['members'])
        members = root + (additions or [])
        fields = []
        for i, m in enumerate(members):
            st = swift_for(m, module, params, swift_name, m['name'], nested)
            optional = m.get('optional') or i >= len(root)
            fields.append((camel_lower(m['name']), st, optional, m['name'], i))
        out.append('%s/// ASN.1 `%s`.' % (pad, asn_name))
        out.append('%spublic struct %s: Sendable, Equatable, PERConvertible%s {' % (
            pad, swift_name.split('.')[-1], message_conformance))
        for fname, st, optional, asn, i in fields:
            out.append('%s    public var %s: %s%s' % (pad, fname, st, '?' if optional else ''))
        out.append('%s    /// Extension additions this schema does not know, kept for re-encoding.' % pad)
        out.append('%s    public var unknownAdditions: [PERUnknownAddition] = []' % pad)
        params_list = ', '.join('%s: %s%s' % (f.strip('`'), st, '? = nil' if opt else '')
                                for f, st, opt, _, _ in fields)
        out.append('%s    public init(%s) {' % (pad, params_list))
        for f, st, opt, _, _ in fields:
            out.append('%s        self.%s = %s' % (pad, f.strip('`'), f))
        out.append('%s    }' % pad)
        out.append('%s    public init(perValue: PERValue) throws(PERError) {' % pad)
        out.append('%s        guard case .sequence(let s) = perValue else { throw .typeMismatch(%s) }' % (pad, string_lit(asn_name)))
        for f, st, opt, asn, i in fields:
            fn = 'perOptional' if opt else 'perRequired'
            out.append('%s        self.%s = try %s(s, %d, %s)' % (pad, f.strip('`'), fn, i, string_lit(asn)))
        out.append('%s        self.unknownAdditions = s.unknownAdditions' % pad)
        out.append('%s    }' % pad)
        out.append('%s    public var perValue: PERValue {' % pad)
        vals = ', '.join(('%s?.perValue' if opt else '%s.perValue') % f for f, st, opt, _, _ in fields)
        out.append('%s        .sequence(PERSequenceValue(members: [%s], unknownAdditions: unknownAdditions))' % (pad, vals))
        out.append('%s    }' % pad)
    elif t == 'CHOICE':
        root, additions = split_members(node['members'])
        members = root + (additions or [])
        out.append('%s/// ASN.1 `%s`.' % (pad, asn_name))
        out.append('%spublic indirect enum %s: Sendable, Equatable, PERConvertible%s {' % (
            pad, swift_name.split('.')[-1], message_conformance))
        cases = []
        for i, m in enumerate(members):
            st = None if m['type'] == 'NULL' else swift_for(m, module, params, swift_name, m['name'], nested)
            cases.append((camel_lower(m['name']), st, i))
            out.append('%s    case %s%s' % (pad, camel_lower(m['name']), '' if st is None else '(%s)' % st))
        out.append('%s    /// An extension alternative this schema does not know: its index and encoding.' % pad)
        out.append('%s    case unknownExtension(Int, [UInt8])' % pad)
        out.append('%s    public init(perValue: PERValue) throws(PERError) {' % pad)
        out.append('%s        guard case .choice(let index, let value) = perValue else { throw .typeMismatch(%s) }' % (pad, string_lit(asn_name)))
        out.append('%s        switch index {' % pad)
        for c, st, i in cases:
            if st is None:
                out.append('%s        case %d: self = .%s' % (pad, i, c))
            else:
                out.append('%s        case %d: self = .%s(try %s(perValue: value))' % (pad, i, c, perinit(st)))
        out.append('%s        default:' % pad)
        out.append('%s            guard case .openType(let bytes) = value else { throw .typeMismatch(%s) }' % (pad, string_lit(asn_name)))
        out.append('%s            self = .unknownExtension(index, bytes)' % pad)
        out.append('%s        }' % pad)
        out.append('%s    }' % pad)
        out.append('%s    public var perValue: PERValue {' % pad)
        out.append('%s        switch self {' % pad)
        for c, st, i in cases:
            if st is None:
                out.append('%s        case .%s: return .choice(%d, .null)' % (pad, c, i))
            else:
                out.append('%s        case .%s(let v): return .choice(%d, v.perValue)' % (pad, c, i))
        out.append('%s        case .unknownExtension(let index, let bytes): return .choice(index, .openType(bytes))' % pad)
        out.append('%s        }' % pad)
        out.append('%s    }' % pad)
    elif t == 'ENUMERATED':
        root, additions = [], None
        for v in node['values']:
            if v is None:
                additions = []
                continue
            (additions if additions is not None else root).append(v)
        names = [v[0] for v in sorted(root, key=lambda v: v[1])] + [v[0] for v in (additions or [])]
        out.append('%s/// ASN.1 `%s`.' % (pad, asn_name))
        out.append('%spublic enum %s: Sendable, Equatable, Hashable, PERConvertible%s {' % (
            pad, swift_name.split('.')[-1], message_conformance))
        for n in names:
            out.append('%s    case %s' % (pad, camel_lower(n)))
        out.append('%s    /// An extension value this schema does not know.' % pad)
        out.append('%s    case unknownExtension(Int)' % pad)
        out.append('%s    public init(perValue: PERValue) throws(PERError) {' % pad)
        out.append('%s        guard case .enumerated(let index) = perValue else { throw .typeMismatch(%s) }' % (pad, string_lit(asn_name)))
        out.append('%s        switch index {' % pad)
        for i, n in enumerate(names):
            out.append('%s        case %d: self = .%s' % (pad, i, camel_lower(n)))
        out.append('%s        default: self = .unknownExtension(index)' % pad)
        out.append('%s        }' % pad)
        out.append('%s    }' % pad)
        out.append('%s    public var perValue: PERValue {' % pad)
        out.append('%s        switch self {' % pad)
        for i, n in enumerate(names):
            out.append('%s        case .%s: return .enumerated(%d)' % (pad, camel_lower(n), i))
        out.append('%s        case .unknownExtension(let index): return .enumerated(index)' % pad)
        out.append('%s        }' % pad)
        out.append('%s    }' % pad)
    else:
        raise AssertionError(t)
    if top_level_index is not None:
        out.append('%s    public static var perType: PERType { .reference(%d) }' % (pad, top_level_index))
    for name, child in nested:
        out.append('')
        out.extend(gen_type(swift_name + '.' + name, child, module, params, asn_name + '.' + name, indent + 4, None))
    out.append('%s}' % pad)
    return out


def perinit(st):
    # Array and optional types need their generic spelling for init(perValue:).
    if st.startswith('['):
        return 'Array<%s>' % st[1:-1] if st != '[UInt8]' else 'Array<UInt8>'
    return st


def gen_types():
    lines = ['// Generated by scripts/h323/gen_h323.py from the ITU-T modules H.225.0 v7 (H323-MESSAGES),',
             '// H.245 v15 (MULTIMEDIA-SYSTEM-CONTROL) and H.235.0 (H235-SECURITY-MESSAGES). Do not edit.',
             '// Names: ASN.1 "h323-uu-pdu" -> h323UuPdu; types defined in two modules carry an H245/H235',
             '// prefix for the second definition; Element -> H235Element, Endpoint -> H225Endpoint.',
             'import PER', '']
    for module, name in order:
        if is_opaque(module, name):
            continue
        node = spec[module]['types'][name]
        params = node.get('parameters', [])
        sname = swift_type_name(module, name)
        t = node['type']
        idx = index_of[(module, name)]
        if t in ('SEQUENCE', 'SET', 'CHOICE', 'ENUMERATED'):
            lines.extend(gen_type(sname, node, module, params, name, 0, idx))
        else:
            nested = []
            st = swift_for(node, module, params, sname, name + 'Element', nested)
            if nested:
                # SEQUENCE OF an anonymous type: give the element its own top-level name.
                (ename, enode), = nested
                elem_name = sname + 'Element'
                lines.extend(gen_type(elem_name, enode, module, params, name + '.element', 0, None))
                st = st.replace(sname + '.' + ename, elem_name)
            lines.append('/// ASN.1 `%s`.' % name)
            lines.append('public typealias %s = %s' % (sname, st))
        lines.append('')
    return '\n'.join(lines) + '\n'


out_dir = os.path.join(REPO, 'Sources', 'H323', 'Generated')
os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, 'H323Schema.generated.swift'), 'w') as f:
    f.write(gen_schema())
with open(os.path.join(out_dir, 'H323Types.generated.swift'), 'w') as f:
    f.write(gen_types())
print('generated %d named types' % len(order))

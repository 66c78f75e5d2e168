#!/usr/bin/env python3
"""Generates the H.323 schema table and typed Swift structures from the ITU ASN.1 modules.

    python3 scripts/h323/gen_h323.py [../shared/asn1]

Input: the module texts in <asn1>/modules (H.225.0 v7, H.245 v15, H.235.0), parsed with
asn1tools through <asn1>/h323_asn.py (parser only: the encoding rules are ours, in
Sources/PER). Output, committed so that building needs no Python:
  Sources/H323/Generated/H323Schema.generated.swift   every type as a PERType value
  Sources/H323/Generated/H323Types.generated.swift    Swift structs/enums + conversions
  Sources/H323/Generated/H323Codec.generated.swift    their direct PER encode/decode
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
        codec.extend(gen_sequence_codec(swift_name, node, module, params, fields, len(root), additions))
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
        codec.extend(gen_choice_codec(swift_name, members, module, params, cases, len(root), additions is not None))
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
        codec.extend(gen_enumerated_codec(swift_name, names, len(root), additions is not None))
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


# ---------------------------------------------------------------- direct codecs
# Each generated type also encodes and decodes itself by calling the PEREncoder/PERDecoder
# primitives in the order its schema gives, without a PERValue tree in between. Every
# constraint below comes from the same module nodes as the schema table above.

codec = []          # Swift lines of H323Codec.generated.swift
string_types = {}   # PERCharacterStringType(...) arguments -> static name
STRING_KINDS = ('IA5String', 'BMPString', 'NumericString', 'PrintableString', 'VisibleString')


def string_type_ref(node, module, params):
    expr = type_expr(node, module, params, '')
    assert expr.startswith('.characterString(') and expr.endswith(')'), expr
    args = expr[len('.characterString('):-1]
    if args not in string_types:
        string_types[args] = 's%d' % len(string_types)
    return 'H323StringTypes.%s' % string_types[args]


def integer_args(node):
    rt = node.get('restricted-to')
    if not rt:
        return 'nil, nil'
    ext = None in rt
    ranges = [r for r in rt if r is not None]
    assert len(ranges) == 1, node
    r = ranges[0]
    lo, hi = (r if isinstance(r, (list, tuple)) else (r, r))
    lo = 'nil' if lo == 'MIN' else lo
    hi = 'nil' if hi == 'MAX' else hi
    return '%s, %s%s' % (lo, hi, ', extensible: true' if ext else '')


def alias_swift(module, name):
    """The Swift type a non-constructed named type stands for (as its typealias says)."""
    node = spec[module]['types'][name]
    params = node.get('parameters', [])
    sname = swift_type_name(module, name)
    nested = []
    st = swift_for(node, module, params, sname, name + 'Element', nested)
    if nested:
        (ename, _), = nested
        st = st.replace(sname + '.' + ename, sname + 'Element')
    return st


def reference_target(node, module):
    """(module, name, node) of a reference, with a constraint on the reference applied."""
    target = resolve(module, node['type'])
    tnode = spec[target[0]]['types'][target[1]]
    if any(k in node for k in ('size', 'restricted-to', 'from')):
        tnode = dict(tnode)
        tnode.update({k: node[k] for k in ('size', 'restricted-to', 'from') if k in node})
        return target, tnode, True
    return target, tnode, False


def dec(node, module, params, st, level=0):
    """A Swift expression that decodes `node` (Swift type `st`) from decoder `d`."""
    t = node['type']
    if t in params or t == 'OpenType':
        return 'try d.decodeOpenType()'
    if t == 'NULL':
        return 'PERNull()'
    if t == 'BOOLEAN':
        return 'try d.decodeBoolean()'
    if t == 'INTEGER':
        return 'try d.decodeInteger(%s)' % integer_args(node)
    if t == 'BIT STRING':
        return 'try d.decodeBitString(%s)' % (size_expr(node) or '.unconstrained')
    if t == 'OCTET STRING':
        return 'try d.decodeOctetString(%s)' % (size_expr(node) or '.unconstrained')
    if t == 'OBJECT IDENTIFIER':
        return 'try d.decodeObjectIdentifier()'
    if t in STRING_KINDS:
        return 'try d.decodeString(%s)' % string_type_ref(node, module, params)
    if t == 'GeneralString':
        return 'try d.decodeGeneralString()'
    if t in ('SEQUENCE', 'SET', 'CHOICE', 'ENUMERATED'):
        return 'try %s(perDecoder: &d)' % st
    if t in ('SEQUENCE OF', 'SET OF'):
        assert st.startswith('[') and st.endswith(']'), st
        est = st[1:-1]
        inner = dec(node['element'], module, params, est, level + 1)
        return 'try d.decodeSequenceOf(%s) { (d: inout PERDecoder) throws(PERError) -> %s in %s }' % (
            size_expr(node) or '.unconstrained', est, inner)
    target, tnode, constrained = reference_target(node, module)
    if is_opaque(*target):
        assert not constrained
        return 'try d.decodeValue(.reference(%d))' % index_of[target]
    if tnode['type'] in ('SEQUENCE', 'SET', 'CHOICE', 'ENUMERATED'):
        assert not constrained
        return 'try %s(perDecoder: &d)' % swift_type_name(*target)
    return dec(tnode, target[0], tnode.get('parameters', []), alias_swift(*target), level)


def enc(node, module, params, st, x, level=0):
    """A Swift statement that encodes `x` (of Swift type `st`, as `node`) with encoder `e`."""
    t = node['type']
    if t in params or t == 'OpenType':
        return 'e.encodeOpenType(%s)' % x
    if t == 'NULL':
        return '_ = %s' % x
    if t == 'BOOLEAN':
        return 'e.encodeBoolean(%s)' % x
    if t == 'INTEGER':
        return 'try e.encodeInteger(%s, %s)' % (x, integer_args(node))
    if t == 'BIT STRING':
        return 'try e.encodeBitString(%s, %s)' % (x, size_expr(node) or '.unconstrained')
    if t == 'OCTET STRING':
        return 'try e.encodeOctetString(%s, %s)' % (x, size_expr(node) or '.unconstrained')
    if t == 'OBJECT IDENTIFIER':
        return 'try e.encodeObjectIdentifier(%s)' % x
    if t in STRING_KINDS:
        return 'try e.encodeString(%s, %s)' % (x, string_type_ref(node, module, params))
    if t == 'GeneralString':
        return 'try e.encodeGeneralString(%s)' % x
    if t in ('SEQUENCE', 'SET', 'CHOICE', 'ENUMERATED'):
        return 'try %s.perEncode(to: &e)' % x
    if t in ('SEQUENCE OF', 'SET OF'):
        assert st.startswith('[') and st.endswith(']'), st
        est = st[1:-1]
        v = 'element%d' % level
        inner = enc(node['element'], module, params, est, v, level + 1)
        return 'try e.encodeSequenceOf(%s, %s) { (e: inout PEREncoder, %s: %s) throws(PERError) in %s }' % (
            x, size_expr(node) or '.unconstrained', v, est, inner)
    target, tnode, constrained = reference_target(node, module)
    if is_opaque(*target):
        assert not constrained
        return 'try e.encodeValue(%s, .reference(%d))' % (x, index_of[target])
    if tnode['type'] in ('SEQUENCE', 'SET', 'CHOICE', 'ENUMERATED'):
        assert not constrained
        return 'try %s.perEncode(to: &e)' % x
    return enc(tnode, target[0], tnode.get('parameters', []), alias_swift(*target), x, level)


def gen_sequence_codec(swift_name, node, module, params, fields, root_count, additions):
    root, adds = split_members(node['members'])
    members = root + (adds or [])
    extensible = additions is not None
    optional_count = sum(1 for m in root if m.get('optional'))
    assert optional_count <= 64 and len(adds or []) <= 64, swift_name
    out = ['', 'extension %s: PERCodable {' % swift_name,
           '    public init(perDecoder d: inout PERDecoder) throws(PERError) {',
           '        %s = try d.beginSequence(extensible: %s, optionalCount: %d, rootCount: %d)' % (
               'let header' if extensible or optional_count else '_', 'true' if extensible else 'false',
               optional_count, root_count)]
    k = 0
    for (f, st, opt, asn, i), m in zip(fields, members):
        if i >= root_count:
            break
        value = dec(m, module, params, st)
        if m.get('optional'):
            out.append('        if header.isPresent(%d) { self.%s = %s } else { self.%s = nil }' % (k, f, value, f))
            k += 1
        else:
            out.append('        self.%s = %s' % (f, value))
    if extensible:
        out.append('        if header.extended {')
        out.append('            var cursor = try d.beginAdditions(known: %d)' % len(adds))
        if adds:
            out.append('            while let position = try d.nextAddition(&cursor) {')
            out.append('                switch position {')
            for (f, st, opt, asn, i), m in zip(fields[root_count:], members[root_count:]):
                out.append('                case %d: self.%s = %s' % (i - root_count, f, dec(m, module, params, st)))
            out.append('                default: break')
            out.append('                }')
            out.append('            }')
        else:
            out.append('            while try d.nextAddition(&cursor) != nil {}')
        out.append('            self.unknownAdditions = cursor.unknown')
        out.append('        }')
    out.append('        d.endConstructed()')
    out.append('    }')
    out.append('')
    out.append('    public func perEncode(to e: inout PEREncoder) throws(PERError) {')
    if extensible:
        out.append('        %s known: UInt64 = 0' % ('var' if adds else 'let'))
        for (f, st, opt, asn, i) in fields[root_count:]:
            out.append('        if self.%s != nil { known |= 1 << %d }' % (f, i - root_count))
        out.append('        let extended = e.beginSequence(extensible: true, knownAdditions: known, unknownAdditions: self.unknownAdditions)')
    for (f, st, opt, asn, i), m in zip(fields, members):
        if i < root_count and m.get('optional'):
            out.append('        e.encodePresence(self.%s != nil)' % f)
    for (f, st, opt, asn, i), m in zip(fields, members):
        if i >= root_count:
            break
        if m.get('optional'):
            out.append('        if let value = self.%s { %s }' % (f, enc(m, module, params, st, 'value')))
        else:
            out.append('        %s' % enc(m, module, params, st, 'self.' + f))
    if extensible:
        out.append('        if extended {')
        out.append('            try e.encodeAdditionBitmap(known: %d, present: known, unknownAdditions: self.unknownAdditions)' % len(adds))
        for (f, st, opt, asn, i), m in zip(fields[root_count:], members[root_count:]):
            out.append('            if let value = self.%s {' % f)
            out.append('                let start = e.beginOpenType()')
            out.append('                %s' % enc(m, module, params, st, 'value'))
            out.append('                e.endOpenType(start)')
            out.append('            }')
        out.append('            e.encodeUnknownAdditions(self.unknownAdditions)')
        out.append('        }')
    out.append('    }')
    out.append('}')
    return out


def gen_choice_codec(swift_name, members, module, params, cases, root_count, extensible):
    args = 'rootCount: %d, knownCount: %d, extensible: %s' % (root_count, len(members), 'true' if extensible else 'false')
    index_args = 'rootCount: %d, extensible: %s' % (root_count, 'true' if extensible else 'false')
    out = ['', 'extension %s: PERCodable {' % swift_name,
           '    public init(perDecoder d: inout PERDecoder) throws(PERError) {',
           '        let header = try d.beginChoice(%s)' % args,
           '        switch header.index {']
    for (c, st, i), m in zip(cases, members):
        if st is None:
            out.append('        case %d: self = .%s' % (i, c))
        else:
            out.append('        case %d: self = .%s(%s)' % (i, c, dec(m, module, params, st)))
    out.append('        default: self = .unknownExtension(header.index, header.unknownEncoding)')
    out.append('        }')
    out.append('        d.endChoice(header)')
    out.append('    }')
    out.append('')
    out.append('    public func perEncode(to e: inout PEREncoder) throws(PERError) {')
    out.append('        switch self {')
    for (c, st, i), m in zip(cases, members):
        pattern = '.%s' % c if st is None else '.%s(let value)' % c
        body = [] if st is None else [enc(m, module, params, st, 'value')]
        out.append('        case %s:' % pattern)
        out.append('            try e.encodeChoiceIndex(%d, %s)' % (i, index_args))
        if i >= root_count:
            out.append('            let start = e.beginOpenType()')
            out.extend('            ' + b for b in body)
            out.append('            e.endOpenType(start)')
        else:
            out.extend('            ' + b for b in body)
    out.append('        case .unknownExtension(let index, let encoding):')
    out.append('            try e.encodeUnknownAlternative(index, encoding, knownCount: %d, %s)' % (len(members), index_args))
    out.append('        }')
    out.append('    }')
    out.append('}')
    return out


def gen_enumerated_codec(swift_name, names, root_count, extensible):
    args = 'rootCount: %d, extensible: %s' % (root_count, 'true' if extensible else 'false')
    out = ['', 'extension %s: PERCodable {' % swift_name,
           '    public init(perDecoder d: inout PERDecoder) throws(PERError) {',
           '        switch try d.decodeEnumerated(%s) {' % args]
    for i, n in enumerate(names):
        out.append('        case %d: self = .%s' % (i, camel_lower(n)))
    out.append('        case let index: self = .unknownExtension(index)')
    out.append('        }')
    out.append('    }')
    out.append('')
    out.append('    public func perEncode(to e: inout PEREncoder) throws(PERError) {')
    out.append('        let index: Int')
    out.append('        switch self {')
    for i, n in enumerate(names):
        out.append('        case .%s: index = %d' % (camel_lower(n), i))
    out.append('        case .unknownExtension(let value): index = value')
    out.append('        }')
    out.append('        try e.encodeEnumerated(index, %s)' % args)
    out.append('    }')
    out.append('}')
    return out


def gen_codecs():
    lines = ['// Generated by scripts/h323/gen_h323.py from the ITU-T modules H.225.0 v7 (H323-MESSAGES),',
             '// H.245 v15 (MULTIMEDIA-SYSTEM-CONTROL) and H.235.0 (H235-SECURITY-MESSAGES). Do not edit.',
             '// Each typed structure encodes and decodes itself through the PER primitives, in the order',
             '// and with the constraints of its schema (the same ones as H323Schema.generated.swift).',
             'import PER', '',
             '/// The permitted alphabets and sizes of the character strings, built once.',
             'enum H323StringTypes {']
    for args, name in string_types.items():
        lines.append('    static let %s = %s' % (name, args))
    lines.append('}')
    lines.extend(codec)
    return '\n'.join(lines) + '\n'


out_dir = os.path.join(REPO, 'Sources', 'H323', 'Generated')
os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, 'H323Schema.generated.swift'), 'w') as f:
    f.write(gen_schema())
with open(os.path.join(out_dir, 'H323Types.generated.swift'), 'w') as f:
    f.write(gen_types())
with open(os.path.join(out_dir, 'H323Codec.generated.swift'), 'w') as f:
    f.write(gen_codecs())
print('generated %d named types' % len(order))

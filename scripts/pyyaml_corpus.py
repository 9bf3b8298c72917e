#!/usr/bin/env python3
"""Write fixtures/yaml11/corpus.jsonl: small YAML documents and what PyYAML makes of them.

Usage (from the repository root):
    /tmp/paasta/bin/python scripts/pyyaml_corpus.py

PaaSTA loads soa-configs with PyYAML's CSafeLoader and hashes
json.dumps(value, sort_keys=True) of the result, so our loader
(tests/yaml_differential.rs) has to agree with it byte for byte. Each
output line is one case:

  {"name", "yaml", "json": json.dumps(yaml.load(yaml, CSafeLoader), sort_keys=True)}
  {"name", "yaml", "load_error": "<ExceptionType>"}   yaml.load raised
  {"name", "yaml", "dump_error": "<ExceptionType>"}   yaml.load worked, json.dumps raised

PyYAML must be 6.0.3 (PaaSTA pins 6.0.1). 6.0.4 changed the precedence of
`<<: [*a, *b]` (yaml/pyyaml#953), so the script refuses to run with anything else.
"""
import json
import os
import sys

import yaml

OUTPUT = os.path.join("fixtures", "yaml11", "corpus.jsonl")


def nested_maps(depth):
    """`k0: {k1: ... {leaf: 1}}` written as indented block mappings."""
    lines = []
    for level in range(depth):
        lines.append("  " * level + "k%d:" % level)
    lines.append("  " * depth + "leaf: 1")
    return "\n".join(lines) + "\n"


def nested_flow_seqs(depth):
    return "a: " + "[" * depth + "1" + "]" * depth + "\n"


CASES = [
    # ------------------------------------------------------------------
    # Booleans: YAML 1.1 spellings, and look-alikes that stay strings.
    # ------------------------------------------------------------------
    ("bool_true_spellings", "a: yes\nb: Yes\nc: YES\nd: true\ne: True\nf: TRUE\ng: on\nh: On\ni: ON\n"),
    ("bool_false_spellings", "a: no\nb: No\nc: NO\nd: false\ne: False\nf: FALSE\ng: off\nh: Off\ni: OFF\n"),
    ("bool_single_letters_are_strings", "a: y\nb: Y\nc: n\nd: N\n"),
    ("bool_mixed_case_are_strings", "a: yEs\nb: tRUE\nc: oN\nd: fALSE\ne: nO\nf: OfF\n"),
    ("bool_quoted_are_strings", "a: 'yes'\nb: \"on\"\nc: 'false'\n"),
    ("bool_in_flow_sequence", "a: [yes, no, on, off, y, n, true, false]\n"),
    ("bool_with_trailing_text_is_string", "a: yes please\nb: true-ish\nc: offline\n"),
    ("bool_keys", "true: a\nfalse: b\n"),
    ("bool_key_yes_no", "yes: a\nno: b\non: c\n"),
    ("bool_literal_block_is_string", "a: |-\n  yes\n"),

    # ------------------------------------------------------------------
    # Integers: decimal, signs, octal, hex, binary, sexagesimal, underscores.
    # ------------------------------------------------------------------
    ("int_decimal", "a: 0\nb: 7\nc: 42\nd: 1234567890\n"),
    ("int_signs", "a: -42\nb: +42\nc: -0\nd: +0\n"),
    ("int_octal", "a: 010\nb: 0777\nc: -017\nd: +07\ne: 00\n"),
    ("int_octal_invalid_digits_are_strings", "a: 08\nb: 09\nc: 0189\n"),
    ("int_octal_0o_is_string", "a: 0o17\nb: 0O17\n"),
    ("int_octal_underscores", "a: 0_7\nb: 01_0\nc: 0_\n"),
    ("int_hex", "a: 0x1F\nb: 0xff\nc: -0x10\nd: +0xA\ne: 0x0\n"),
    ("int_hex_uppercase_prefix_is_string", "a: 0X1F\n"),
    ("int_hex_underscores", "a: 0xff_ff\nb: 0x_1\n"),
    ("int_hex_no_digits_is_string", "a: 0x\n"),
    ("int_hex_only_underscore", "a: 0x_\n"),
    ("int_binary", "a: 0b1010\nb: -0b11\nc: +0b1\nd: 0b0\n"),
    ("int_binary_underscores", "a: 0b1_0_1\nb: 0b_1\n"),
    ("int_binary_uppercase_prefix_is_string", "a: 0B11\n"),
    ("int_binary_only_underscore", "a: 0b_\n"),
    ("int_binary_bad_digit_is_string", "a: 0b102\n"),
    ("int_underscores", "a: 1_000_000\nb: 1__0\nc: 1_\nd: -1_0\n"),
    ("int_leading_underscore_is_string", "a: _1\n"),
    ("int_sexagesimal", "a: 1:30\nb: 1:30:00\nc: 190:20:30\nd: -1:30\ne: +1:05\n"),
    ("int_sexagesimal_underscores_in_first_part", "a: 1_0:30\n"),
    ("int_sexagesimal_out_of_range_is_string", "a: 1:60\nb: 1:7:123\n"),
    ("int_sexagesimal_leading_zero_is_string", "a: 0:30\nb: 01:30\n"),
    ("int_sexagesimal_single_digit_parts", "a: 1:2:3\n"),
    ("int_i64_max", "a: 9223372036854775807\n"),
    ("int_i64_min", "a: -9223372036854775808\n"),
    ("int_above_i64_fits_u64", "a: 9223372036854775808\n"),
    ("int_u64_max", "a: 18446744073709551615\n"),
    ("int_above_u64", "a: 18446744073709551616\n"),
    ("int_below_i64", "a: -9223372036854775809\n"),
    ("int_beyond_128_bits", "a: 123456789012345678901234567890123456789012\n"),
    ("int_hex_beyond_64_bits", "a: 0x1ffffffffffffffff\n"),
    ("int_with_space_is_string", "a: 1 000\n"),
    ("int_with_comma_is_string", "a: 1,000\n"),
    ("int_quoted_is_string", "a: '42'\nb: \"0x1F\"\n"),

    # ------------------------------------------------------------------
    # Floats: a dot is required; exponents need a sign; Python repr output.
    # ------------------------------------------------------------------
    ("float_basic", "a: 1.0\nb: 1.5\nc: -1.5\nd: +1.5\ne: 0.0\n"),
    ("float_trailing_dot", "a: 1.\nb: -1.\nc: 10.\n"),
    ("float_leading_dot", "a: .5\nb: .25\nc: .0\n"),
    ("float_signed_leading_dot_is_string", "a: -.5\nb: +.5\n"),
    ("float_lone_dot_is_string", "a: .\nb: -.\n"),
    ("float_dot_underscore_is_string", "a: ._5\n"),
    ("float_signed_exponent", "a: 1.0e+3\nb: 1.0E-3\nc: 1.5e+03\nd: -2.5e-2\ne: 1.e+3\nf: .5e+3\n"),
    ("float_unsigned_exponent_is_string", "a: 1.0e3\nb: 1e3\nc: 1E3\nd: .5e3\n"),
    ("float_exponent_without_dot_is_string", "a: 1e+3\nb: 1e-3\n"),
    ("float_underscores", "a: 1_000.5\nb: 1.5_0\nc: 1_2.3_4\nd: 1_.5\n"),
    ("float_leading_zeros", "a: 00.5\nb: 007.25\n"),
    ("float_python_repr_small", "a: 0.1\nb: 0.0001\nc: 0.00001\nd: 0.0000001\n"),
    ("float_python_repr_large", "a: 1.0e+15\nb: 1.0e+16\nc: 123456789012345678.0\nd: 1.0e+22\n"),
    ("float_python_repr_roundtrip", "a: 0.30000000000000004\nb: 3.14159265358979323846\nc: 123456789.123456789\nd: 2.675\n"),
    ("float_integral_values_keep_dot_zero", "a: 100.0\nb: 2.50\nc: 1.000\n"),
    ("float_negative_zero", "a: -0.0\nb: -0.\n"),
    ("float_extremes", "a: 1.7976931348623157e+308\nb: 2.2250738585072014e-308\nc: 4.9e-324\n"),
    ("float_underflow_to_zero", "a: 1.0e-400\nb: -1.0e-400\n"),
    ("float_overflow_to_inf", "a: 1.0e+309\n"),
    ("float_two_dots_is_string", "a: 1.2.3\n"),
    ("float_sexagesimal", "a: 1:30.5\nb: 190:20:30.15\nc: -1:30.0\nd: 1:30.\ne: 1_0:30.5\n"),
    ("float_sexagesimal_rounding", "a: 20:30.1\nb: 59:59:59.99\n"),
    ("float_inf_spellings", "a: .inf\nb: .Inf\nc: .INF\n"),
    ("float_negative_inf_spellings", "a: -.inf\nb: -.Inf\nc: -.INF\n"),
    ("float_positive_inf_spellings", "a: +.inf\nb: +.Inf\nc: +.INF\n"),
    ("float_nan_spellings", "a: .nan\nb: .NaN\nc: .NAN\n"),
    ("float_inf_nan_other_spellings_are_strings", "a: .iNF\nb: .nAn\nc: inf\nd: nan\ne: NaN\nf: Infinity\ng: .infinity\n"),
    ("float_signed_nan_is_string", "a: -.nan\nb: +.NaN\n"),
    ("float_in_flow", "a: [1.5, .5, 1., 1.0e+2]\n"),
    ("float_quoted_is_string", "a: '1.5'\nb: \".inf\"\n"),

    # ------------------------------------------------------------------
    # Nulls.
    # ------------------------------------------------------------------
    ("null_spellings", "a: ~\nb: null\nc: Null\nd: NULL\n"),
    ("null_other_spellings_are_strings", "a: nULL\nb: nil\nc: None\nd: NUll\n"),
    ("null_empty_values", "a:\nb: \nc: # comment\n"),
    ("null_in_sequences", "a:\n- \n- ~\n-\n- null\n"),
    ("null_in_flow", "a: [~, null, ]\nb: {x: , y: ~}\nc: {z}\n"),
    ("null_explicit_key_without_value", "? a\n? b\n"),
    ("null_quoted_is_string", "a: 'null'\nb: \"~\"\nc: ''\n"),
    ("null_key_alone", "~: a\n"),
    ("null_key_empty", "? \n: a\n"),
    ("null_key_with_string_key", "~: a\nb: c\n"),

    # ------------------------------------------------------------------
    # Timestamps (Python date/datetime: json.dumps cannot encode them).
    # ------------------------------------------------------------------
    ("timestamp_date", "a: 2001-12-14\n"),
    ("timestamp_canonical", "a: 2001-12-15T02:59:43.1Z\n"),
    ("timestamp_iso8601_offset", "a: 2001-12-14t21:59:43.10-05:00\n"),
    ("timestamp_space_separated", "a: 2001-12-14 21:59:43.10 -5\n"),
    ("timestamp_no_timezone", "a: 2001-12-15 2:59:43.10\n"),
    ("timestamp_no_fraction", "a: 2001-12-14T21:59:43\n"),
    ("timestamp_long_fraction", "a: 2001-12-14T21:59:43.123456789Z\n"),
    ("timestamp_single_digit_month_day_with_time", "a: 2001-1-2T3:04:05Z\n"),
    ("timestamp_single_digit_month_date_only_is_string", "a: 2001-1-2\n"),
    ("timestamp_tab_separator", "a: 2001-12-14\t21:59:43\n"),
    ("timestamp_invalid_day", "a: 2001-02-30\n"),
    ("timestamp_invalid_month", "a: 2001-13-01\n"),
    ("timestamp_invalid_hour", "a: 2001-12-14T25:00:00\n"),
    ("timestamp_quoted_is_string", "a: '2001-12-14'\nb: \"2001-12-14T21:59:43Z\"\n"),
    ("timestamp_as_key", "2001-12-14: a\n"),
    ("timestamp_in_sequence", "a: [2001-12-14]\n"),
    ("timestamp_trailing_text_is_string", "a: 2001-12-14x\nb: 2001-12-14 at noon\n"),
    ("timestamp_version_like_is_string", "a: 1.2.3-4\nb: 2001-12\n"),

    # ------------------------------------------------------------------
    # Plain strings and the characters that do or do not end them.
    # ------------------------------------------------------------------
    ("string_plain", "a: hello world\nb: with  two  spaces\n"),
    ("string_colon_inside", "a: b:c\nb: http://example.com:8080/x?y=1\nc: 'a: b'\n"),
    ("string_hash_without_space_is_text", "a: b#c\nb: b #c\nc: '#x'\n"),
    ("string_leading_indicators", "a: :colon\nb: -dash\nc: ?question\nd: .dot\ne: /slash\n"),
    ("string_lone_dash_value", "a: '-'\nb: [-]\n"),
    ("string_trailing_spaces_trimmed", "a: text   \nb: 'kept   '\n"),
    ("string_tab_inside", "a: b\tc\n"),
    ("string_commas_in_block", "a: 1,2,3\nb: a, b\n"),
    ("string_flow_url", "a: {url: http://x:80/y, b: [c:d, e]}\n"),
    ("string_numbers_with_units", "a: 10m\nb: 1.5Gi\nc: 100ms\nd: 2h\n"),
    ("string_version_numbers", "a: 1.2.3\nb: 3.10\nc: v1.0\n"),
    ("string_equals_sign_value", "a: =\n"),
    ("string_equals_sign_key", "=: a\n"),
    ("string_equals_sign_in_flow_key", "a: {=: b}\n"),
    ("string_equals_text", "a: ==\nb: a=b\nc: '='\n"),
    ("string_merge_indicator_as_value", "a: <<\n"),
    ("string_merge_indicator_in_sequence", "a: [<<]\n"),
    ("string_merge_indicator_quoted_value", "a: '<<'\nb: <<<\n"),

    # ------------------------------------------------------------------
    # Quoted scalars and escapes.
    # ------------------------------------------------------------------
    ("single_quoted_escape", "a: 'it''s'\nb: ''''\nc: 'back\\slash'\n"),
    ("double_quoted_basic_escapes", 'a: "q\\"uote"\nb: "back\\\\slash"\nc: "tab\\there"\nd: "new\\nline"\ne: "cr\\rx"\n'),
    ("double_quoted_control_escapes", 'a: "\\0\\a\\b\\e\\f\\v"\n'),
    ("double_quoted_hex_escapes", 'a: "\\x41\\x7f\\xe9"\n'),
    ("double_quoted_unicode_escapes", 'a: "\\u00e9\\u263A\\uffff"\n'),
    ("double_quoted_astral_escape", 'a: "\\U0001F600"\n'),
    ("double_quoted_slash_and_space_escapes", 'a: "\\/\\ x"\n'),
    ("double_quoted_yaml11_break_escapes", 'a: "\\N\\_\\L\\P"\n'),
    ("double_quoted_tab_escape_literal_tab", 'a: "\\\tx"\n'),
    ("double_quoted_invalid_escape", 'a: "\\q"\n'),
    ("double_quoted_single_quote_escape_invalid", 'a: "\\\'"\n'),
    ("double_quoted_surrogate_escape", 'a: "\\ud800"\n'),
    ("double_quoted_escape_beyond_unicode", 'a: "\\U00110000"\n'),
    ("double_quoted_line_continuation", 'a: "abc\\\n  def"\n'),
    ("double_quoted_folding", 'a: "one\n  two\n\n  three"\n'),
    ("double_quoted_leading_trailing_spaces", 'a: "  padded  "\n'),
    ("single_quoted_folding", "a: 'one\n  two\n\n\n  three'\n"),
    ("quoted_keys", "'a b': 1\n\"c\\td\": 2\n'': 3\n"),
    ("unclosed_double_quote", 'a: "abc\n'),
    ("unclosed_single_quote", "a: 'abc\n"),

    # ------------------------------------------------------------------
    # Block scalars: literal and folded, chomping, indentation indicators.
    # ------------------------------------------------------------------
    ("literal_clip", "a: |\n  line1\n  line2\nb: 1\n"),
    ("literal_strip", "a: |-\n  line1\n  line2\nb: 1\n"),
    ("literal_keep", "a: |+\n  line1\n  line2\n\n\nb: 1\n"),
    ("literal_keep_at_end_of_document", "a: |+\n  line1\n\n"),
    ("literal_clip_trailing_blank_lines", "a: |\n  line1\n\n\nb: 1\n"),
    ("literal_leading_blank_lines", "a: |\n\n\n  line1\n"),
    ("literal_indentation_indicator", "a: |2\n    indented\n  base\n"),
    ("literal_indicator_and_chomping", "a: |2-\n    x\nb: |-2\n    y\n"),
    ("literal_more_indented_lines", "a: |\n  x\n    y\n  z\n"),
    ("literal_with_tabs_and_hash", "a: |\n  col1\tcol2\n  # not a comment\n"),
    ("literal_with_comment_after_indicator", "a: | # comment\n  text\n"),
    ("literal_empty", "a: |\nb: 1\n"),
    ("literal_keep_empty", "a: |+\n\nb: 1\n"),
    ("literal_in_sequence", "a:\n- |\n  x\n- |-\n  y\n"),
    ("literal_trailing_spaces_kept", "a: |\n  x  \n"),
    ("folded_clip", "a: >\n  one\n  two\n\n  three\nb: 1\n"),
    ("folded_strip", "a: >-\n  one\n  two\nb: 1\n"),
    ("folded_keep", "a: >+\n  one\n  two\n\nb: 1\n"),
    ("folded_more_indented", "a: >\n  one\n    two\n  three\n\n  four\n"),
    ("folded_leading_blank_lines", "a: >\n\n  one\n"),
    ("literal_bad_indentation", "a: |\n    x\n  y\n"),

    # ------------------------------------------------------------------
    # Multi-line plain scalars, line endings and comments.
    # ------------------------------------------------------------------
    ("plain_multiline", "a: one\n  two\n  three\n"),
    ("plain_multiline_blank_line", "a: one\n\n  two\n"),
    ("plain_multiline_in_sequence", "- one\n  two\n- three\n"),
    ("crlf_line_endings", "a: 1\r\nb: |\r\n  x\r\n  y\r\nc: \"p\r\n  q\"\r\n"),
    ("cr_only_line_endings", "a: 1\rb: 2\r"),
    ("comments_everywhere", "# head\na: 1 # tail\n# middle\nb: [1, # in flow\n  2]\n# end\n"),
    ("comment_only_lines_between_block_scalar", "a: |\n  x\n# c\nb: 2\n"),
    ("indented_comment", "a:\n  # nested comment\n  b: 1\n"),
    ("no_trailing_newline", "a: 1"),
    ("leading_blank_lines", "\n\n\na: 1\n"),

    # ------------------------------------------------------------------
    # Non-ASCII, astral characters, keys sorted by code point.
    # ------------------------------------------------------------------
    ("unicode_value", "a: caf\u00e9\nb: \u65e5\u672c\u8a9e\nc: \u00fc\u00df\n"),
    ("unicode_astral_value", "a: \U0001F600\nb: x\U0001F680y\nc: '\U00010348'\n"),
    ("unicode_keys", "\u00e9t\u00e9: 1\n\u65e5\u672c: 2\n\U0001F600: 3\n"),
    ("unicode_key_sort_by_code_point", "b: 1\na: 2\nZ: 3\n\u00e9: 4\n\uff21: 5\n\U0001F600: 6\n\uffee: 7\n"),
    ("unicode_combining_characters", "a: e\u0301\nb: \u00e9\n"),
    ("unicode_private_use_and_bmp_edge", "a: \ue000\nb: \ufffd\n"),
    ("unicode_bom_at_start", "\ufeffa: 1\n"),
    ("unicode_nbsp_in_value", "a: x\u00a0y\n"),
    ("unicode_nel_in_plain", "a: x\x85y\n"),
    ("unicode_line_separator_in_plain", "a: x\u2028y\n"),
    ("unicode_line_separator_in_double_quotes", "a: \"x\u2028y\"\n"),
    ("unicode_paragraph_separator_in_single_quotes", "a: 'x\u2029y'\n"),
    ("unicode_nel_in_double_quotes", "a: \"x\x85y\"\n"),
    ("unicode_line_separator_in_plain_continuation", "a: x\u2028  y\n"),
    ("unicode_bom_inside_document", "a: 1\n\ufeffb: 2\n"),
    ("control_character_raw", "a: x\x01y\n"),
    ("control_character_del_raw", "a: x\x7fy\n"),
    ("control_character_escaped", "a: \"x\\x01y\\x1fz\"\n"),
    ("unicode_noncharacter_fffe", "a: x\ufffey\n"),

    # ------------------------------------------------------------------
    # Mapping keys of other types; json.dumps sorts the original keys.
    # ------------------------------------------------------------------
    ("int_keys_sort_numerically", "10: a\n9: b\n-1: c\n100: d\n"),
    ("int_keys_octal_hex", "010: a\n0x10: b\n0b10: c\n"),
    ("float_keys", "1.5: a\n0.5: b\n-2.0: c\n1.0e+3: d\n"),
    ("int_and_float_keys_sort_together", "2: a\n1.5: b\n1: c\n"),
    ("bool_and_int_keys_sort_together", "true: a\n2: b\nfalse: c\n"),
    ("int_key_then_true_is_duplicate", "1: a\ntrue: b\n"),
    ("true_key_then_int_is_duplicate", "true: a\n1: b\n"),
    ("int_key_then_float_is_duplicate", "1: a\n1.0: b\n"),
    ("float_key_then_int_is_duplicate", "1.0: a\n1: b\n"),
    ("zero_false_and_negative_zero_keys", "0: a\nfalse: b\n-0.0: c\n"),
    ("sexagesimal_key", "1:30: a\n"),
    ("big_int_keys", "18446744073709551616: a\n-18446744073709551617: b\n"),
    ("inf_key", ".inf: a\n"),
    ("negative_inf_and_number_keys", "-.inf: a\n1: b\n"),
    ("nan_key", ".nan: a\n"),
    ("two_nan_keys", ".nan: a\n.NaN: b\n"),
    ("two_python_nan_keys", "!!float nan: a\n!!float nan: b\n"),
    ("int_and_string_keys", "a: 1\n1: 2\n"),
    ("quoted_and_plain_number_keys", "1: a\n'1': b\n"),
    ("null_and_int_keys", "~: a\n1: b\n"),
    ("unhashable_sequence_key", "? [a, b]\n: 1\n"),
    ("unhashable_mapping_key", "? {a: 1}\n: 2\n"),
    ("unhashable_flow_key", "{[a]: 1}\n"),
    ("explicit_key", "? a\n: 1\n? b\n: 2\n"),
    ("explicit_block_scalar_key", "? |\n  block key\n: v\n"),
    ("keys_with_spaces_and_colons", "'a: b': 1\n\"x y\": 2\n"),
    ("empty_string_key", "'': a\n"),
    ("flow_mapping_keys_of_types", "{1: a, 2.5: b, true: c}\n"),

    # ------------------------------------------------------------------
    # Duplicate keys: the last value wins, the first key object stays.
    # ------------------------------------------------------------------
    ("duplicate_key", "a: 1\nb: 2\na: 3\n"),
    ("duplicate_key_nested_map_replaced_not_merged", "a:\n  x: 1\n  y: 2\na:\n  z: 3\n"),
    ("duplicate_key_in_flow", "{a: 1, a: 2}\n"),
    ("duplicate_key_quoted_and_plain", "a: 1\n'a': 2\n\"a\": 3\n"),
    ("duplicate_key_three_times", "a: 1\na: 2\na: 3\n"),
    ("duplicate_key_nested_level", "x:\n  a: 1\n  a: 2\n"),
    ("duplicate_null_keys", "~: 1\nnull: 2\n"),

    # ------------------------------------------------------------------
    # Anchors and aliases.
    # ------------------------------------------------------------------
    ("anchor_scalar", "a: &x 1\nb: *x\n"),
    ("anchor_mapping", "a: &m {x: 1, y: [2]}\nb: *m\n"),
    ("anchor_sequence", "a: &s [1, 2]\nb: *s\nc: [*s, *s]\n"),
    ("anchor_block_mapping", "a: &m\n  x: 1\nb: *m\n"),
    ("anchor_on_empty_value", "a: &e\nb: *e\n"),
    ("anchor_on_key", "&k key: 1\nother: *k\n"),
    ("alias_as_key", "a: &k key\n*k : 2\n"),
    ("alias_undefined", "a: *nope\n"),
    ("alias_before_anchor", "a: *x\nb: &x 1\n"),
    ("anchor_redefined", "a: &x 1\nb: *x\nc: &x 2\nd: *x\n"),
    ("anchor_names_dash_underscore_digits", "a: &a-b_1 1\nb: *a-b_1\nc: &2 2\nd: *2\n"),
    ("anchor_name_with_dot", "a: &a.b 1\nb: *a.b\n"),
    ("anchor_name_non_ascii", "a: &\u00e9t\u00e9 1\nb: *\u00e9t\u00e9\n"),
    ("anchor_with_tag", "a: &x !!str 1\nb: *x\nc: !!str &y 2\nd: *y\n"),
    ("anchor_recursive", "a: &r [1, *r]\n"),
    ("anchor_recursive_mapping", "a: &r {b: *r}\n"),
    ("anchor_on_top_level", "&top\na: 1\n"),
    ("alias_of_quoted_scalar", "a: &q '010'\nb: *q\n"),
    ("alias_in_flow_mapping", "a: &x 1\nb: {c: *x, d: [*x]}\n"),
    ("anchor_empty_alias_name", "a: *\n"),

    # ------------------------------------------------------------------
    # `<<` merge keys (PyYAML 6.0.3 semantics).
    # ------------------------------------------------------------------
    ("merge_single", "base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  c: 3\n"),
    ("merge_explicit_overrides_after", "base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 10\n"),
    ("merge_explicit_overrides_before", "base: &b {a: 1, b: 2}\nx:\n  a: 10\n  <<: *b\n"),
    ("merge_list_earlier_wins", "p: &p {a: 1, b: 1}\nq: &q {b: 2, c: 2}\nx:\n  <<: [*p, *q]\n"),
    ("merge_list_three_sources", "p: &p {a: 1}\nq: &q {a: 2, b: 2}\nr: &r {a: 3, b: 3, c: 3}\nx:\n  <<: [*p, *q, *r]\n  d: 4\n"),
    ("merge_list_with_explicit_override", "p: &p {a: 1}\nq: &q {a: 2, b: 2}\nx:\n  <<: [*p, *q]\n  b: 9\n"),
    ("merge_inline_mapping", "x:\n  <<: {a: 1, b: 2}\n  b: 3\n"),
    ("merge_inline_list_of_mappings", "x:\n  <<: [{a: 1}, {a: 2, b: 2}]\n"),
    ("merge_block_mapping_value", "x:\n  <<:\n    a: 1\n    b: 2\n  b: 3\n"),
    ("merge_block_sequence_value", "p: &p {a: 1}\nq: &q {a: 2, b: 2}\nx:\n  <<:\n  - *p\n  - *q\n"),
    ("merge_nested_base_merges_another", "a: &a {x: 1, y: 1}\nb: &b\n  <<: *a\n  y: 2\n  z: 2\nc:\n  <<: *b\n  z: 3\n"),
    ("merge_alias_of_merged_map_twice", "a: &a {x: 1}\nb: &b\n  <<: *a\n  y: 2\nc:\n  <<: [*b, *a]\nd:\n  <<: *b\n"),
    ("merge_is_shallow", "a: &a {tm: {cpus: 1, mem: 2}, n: 1}\nx:\n  <<: *a\n  tm: {instances: 3}\n"),
    ("merge_in_flow_mapping", "a: &a {x: 1, y: 2}\nb: {<<: *a, y: 3}\n"),
    ("merge_in_flow_mapping_list", "a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc: {<<: [*a, *b]}\n"),
    ("merge_two_merge_keys_later_wins", "a: &a {x: 1, y: 1}\nb: &b {x: 2}\nc:\n  <<: *a\n  <<: *b\n"),
    ("merge_empty_mapping", "x:\n  <<: {}\n  a: 1\n"),
    ("merge_empty_list", "x:\n  <<: []\n  a: 1\n"),
    ("merge_alias_to_sequence_of_maps", "l: &l [{a: 1}, {a: 2, b: 2}]\nx:\n  <<: *l\n"),
    ("merge_scalar_is_error", "x:\n  <<: 1\n"),
    ("merge_alias_to_scalar_is_error", "s: &s hi\nx:\n  <<: *s\n"),
    ("merge_null_is_error", "x:\n  <<:\n  a: 1\n"),
    ("merge_list_with_scalar_is_error", "a: &a {x: 1}\ny:\n  <<: [*a, 1]\n"),
    ("merge_nested_list_is_error", "a: &a {x: 1}\nb: &b {y: 1}\nz:\n  <<: [*a, [*b]]\n"),
    ("merge_quoted_key_is_plain_key", "a: &a {x: 1}\nb:\n  '<<': *a\n"),
    ("merge_double_quoted_key_is_plain_key", "b:\n  \"<<\": 1\n"),
    ("merge_explicit_merge_tag", "a: &a {x: 1}\nb:\n  !!merge <<: *a\n"),
    ("merge_str_tag_on_key_is_plain_key", "a: &a {x: 1}\nb:\n  !!str <<: *a\n"),
    ("merge_explicit_key_form", "a: &a {x: 1}\nb:\n  ? <<\n  : *a\n"),
    ("merge_space_before_colon", "a: &a {x: 1}\nb:\n  << : *a\n"),
    ("merge_at_top_level", "<<: {a: 1, b: 2}\nb: 3\n"),
    ("merge_keeps_first_key_object", "a: &a {1: x}\nb:\n  <<: *a\n  true: y\n"),
    ("merge_keys_of_mixed_types", "a: &a {1: x}\nb:\n  <<: *a\n  c: y\n"),
    ("merge_source_with_duplicates", "a: &a {x: 1, x: 2}\nb:\n  <<: *a\n"),
    ("merge_with_timestamp_value", "a: &a {d: 2001-12-14}\nb:\n  <<: *a\n  d: later\n"),
    ("merge_deep_chain", "a: &a {v: a, a: 1}\nb: &b {<<: *a, v: b, b: 1}\nc: &c {<<: *b, v: c, c: 1}\nd: {<<: *c, d: 1}\n"),
    ("merge_in_sequence_items", "base: &b {cpus: 1, mem: 2}\njobs:\n- <<: *b\n  name: a\n- <<: *b\n  name: b\n  cpus: 4\n"),

    # ------------------------------------------------------------------
    # Explicit tags.
    # ------------------------------------------------------------------
    ("tag_str", "a: !!str 123\nb: !!str yes\nc: !!str ~\nd: !!str 1.5\n"),
    ("tag_str_empty", "a: !!str\nb: 1\n"),
    ("tag_str_on_sequence", "a: !!str [1]\n"),
    ("tag_int", "a: !!int 123\nb: !!int \"0x1F\"\nc: !!int '010'\nd: !!int 1_000\ne: !!int '1:30'\nf: !!int -0b11\n"),
    ("tag_int_invalid", "a: !!int abc\n"),
    ("tag_int_float_text", "a: !!int 1.5\n"),
    ("tag_int_empty", "a: !!int ''\n"),
    ("tag_int_octal_bad_digit", "a: !!int '09'\n"),
    ("tag_int_python_0o_prefix", "a: !!int 0o17\n"),
    ("tag_int_surrounding_spaces", "a: !!int ' 12 '\n"),
    ("tag_float", "a: !!float 1\nb: !!float '1e3'\nc: !!float -.5\nd: !!float '1:30'\ne: !!float 1_000.5\nf: !!float '+2'\n"),
    ("tag_float_inf_nan", "a: !!float .inf\nb: !!float -.Inf\n"),
    ("tag_float_python_inf_word", "a: !!float inf\n"),
    ("tag_float_invalid", "a: !!float abc\n"),
    ("tag_float_surrounding_spaces", "a: !!float ' 1.5'\n"),
    ("tag_bool", "a: !!bool yes\nb: !!bool 'false'\nc: !!bool ON\n"),
    ("tag_bool_mixed_case", "a: !!bool TrUe\n"),
    ("tag_bool_invalid", "a: !!bool 1\n"),
    ("tag_bool_single_letter", "a: !!bool y\n"),
    ("tag_null", "a: !!null ''\nb: !!null null\nc: !!null\n"),
    ("tag_null_any_text", "a: !!null whatever\n"),
    ("tag_null_on_mapping", "a: !!null {b: 1}\n"),
    ("tag_binary", "a: !!binary aGVsbG8=\n"),
    ("tag_binary_lenient_decoding", "a: !!binary '!!!'\n"),
    ("tag_binary_bad_padding", "a: !!binary 'abc'\n"),
    ("tag_set", "a: !!set {x, y}\n"),
    ("tag_omap", "a: !!omap [x: 1, y: 2]\n"),
    ("tag_pairs", "a: !!pairs [x: 1, x: 2]\n"),
    ("tag_omap_invalid", "a: !!omap {x: 1}\n"),
    ("tag_seq_and_map", "a: !!seq [1, 2]\nb: !!map {c: 1}\n"),
    ("tag_map_on_sequence", "a: !!map [1]\n"),
    ("tag_seq_on_mapping", "a: !!seq {b: 1}\n"),
    ("tag_timestamp", "a: !!timestamp 2001-12-14\n"),
    ("tag_timestamp_invalid", "a: !!timestamp nope\n"),
    ("tag_str_on_key", "!!str 1: a\n!!str 2: b\n"),
    ("tag_int_on_key", "!!int '1': a\n"),
    ("tag_custom_scalar", "a: !foo bar\n"),
    ("tag_custom_mapping", "a: !foo {b: 1}\n"),
    ("tag_custom_sequence", "a: !foo [1]\n"),
    ("tag_python_name", "a: !!python/name:os.system\n"),
    ("tag_python_object", "a: !!python/object:collections.OrderedDict {}\n"),
    ("tag_verbatim_core", "a: !<tag:yaml.org,2002:str> 123\nb: !<tag:yaml.org,2002:int> '7'\n"),
    ("tag_verbatim_custom", "a: !<tag:example.com,2000:x> 1\n"),
    ("tag_directive_core_handle", "%TAG !e! tag:yaml.org,2002:\n---\na: !e!str 123\nb: !e!int '5'\n"),
    ("tag_undefined_handle", "a: !x!foo 1\n"),
    ("tag_non_specific_plain", "a: ! 123\nb: ! yes\nc: ! abc\n"),
    ("tag_non_specific_quoted", "a: ! '123'\nb: ! \"yes\"\n"),
    ("tag_non_specific_quoted_text", "a: ! 'abc'\nb: ! \"1.5\"\n"),
    ("tag_non_specific_quoted_empty", "a: ! ''\n"),
    ("tag_non_specific_literal_block", "a: ! |\n  12\n"),
    ("tag_non_specific_merge_key", "a: &a {x: 1}\nb: {! <<: *a}\n"),
    ("tag_non_specific_collections", "a: ! [1, 2]\nb: ! {c: 1}\n"),
    ("tag_non_specific_empty", "a: !\nb: 1\n"),

    # ------------------------------------------------------------------
    # Documents: several, empty, markers, directives, non-mapping roots.
    # ------------------------------------------------------------------
    ("empty_stream", ""),
    ("only_comment", "# nothing here\n"),
    ("only_blank_lines", "\n\n"),
    ("only_document_start", "---\n"),
    ("document_start_and_end", "---\n...\n"),
    ("only_document_end", "...\n"),
    ("explicit_document_mapping", "---\na: 1\n...\n"),
    ("document_start_with_inline_value", "--- {a: 1}\n"),
    ("two_documents", "a: 1\n---\nb: 2\n"),
    ("two_explicit_documents", "---\na: 1\n---\nb: 2\n"),
    ("two_empty_documents", "---\n---\n"),
    ("document_then_empty_document", "a: 1\n---\n"),
    ("document_end_then_content", "a: 1\n...\nb: 2\n"),
    ("yaml_directive_1_1", "%YAML 1.1\n---\na: yes\n"),
    ("yaml_directive_1_2", "%YAML 1.2\n---\na: yes\nb: 010\n"),
    ("yaml_directive_2_0", "%YAML 2.0\n---\na: 1\n"),
    ("yaml_directive_without_document", "%YAML 1.1\na: 1\n"),
    ("root_scalar_int", "42\n"),
    ("root_scalar_string", "hello\n"),
    ("root_scalar_null", "~\n"),
    ("root_scalar_float", "1.5\n"),
    ("root_scalar_inf", ".inf\n"),
    ("root_sequence", "- a\n- 1\n- {b: c}\n"),
    ("root_flow_sequence", "[1, [2, 3], {a: b}]\n"),
    ("root_literal", "--- |\n  text\n"),

    # ------------------------------------------------------------------
    # Collections and nesting.
    # ------------------------------------------------------------------
    ("sequence_indented_and_not", "a:\n- 1\n- 2\nb:\n  - 3\n  - 4\n"),
    ("sequence_of_mappings", "- a: 1\n  b: 2\n- c: 3\n"),
    ("sequence_of_sequences", "- - 1\n  - 2\n- - 3\n"),
    ("flow_nested", "a: [1, [2, [3, []]], {b: {c: []}}]\n"),
    ("flow_trailing_comma", "a: [1, 2, ]\nb: {c: 1, }\n"),
    ("flow_single_pair_in_sequence", "a: [b: 1, c: 2]\n"),
    ("flow_empty_collections", "a: []\nb: {}\n"),
    ("flow_multiline", "a: [\n  1,\n  2\n]\nb: {\n  c: 1\n}\n"),
    ("flow_quoted_keys_and_values", "a: {'b': \"c\", \"d e\": 'f'}\n"),
    ("flow_plain_with_spaces", "a: [hello world, foo bar]\n"),
    ("empty_nested_values", "a:\n  b:\n  c: []\n  d: {}\n"),
    ("deep_block_mappings", nested_maps(60)),
    ("deep_flow_sequences", nested_flow_seqs(100)),
    ("deep_mixed_nesting", "a:\n  - b:\n      - c:\n          - d: [e, {f: [g, {h: 1}]}]\n"),
    ("long_sequence", "a: [" + ", ".join(str(i) for i in range(200)) + "]\n"),
    ("many_keys", "".join("k%03d: %d\n" % (i, i) for i in range(120))),
    ("long_string", "a: " + "x" * 5000 + "\n"),

    # ------------------------------------------------------------------
    # Syntax errors.
    # ------------------------------------------------------------------
    ("error_unclosed_flow_mapping", "a: {b: 1\n"),
    ("error_unclosed_flow_sequence", "a: [1, 2\n"),
    ("error_extra_closing_bracket", "a: [1, 2]]\n"),
    ("error_bad_indentation", "a:\n  b: 1\n c: 2\n"),
    ("error_tab_indentation", "a:\n\tb: 1\n"),
    ("error_mapping_value_not_allowed", "a: b: c\n"),
    ("error_sequence_after_mapping", "a: 1\n- b\n"),
    ("error_mapping_after_sequence", "- a\nb: 1\n"),
    ("error_reserved_at_indicator", "a: @foo\n"),
    ("error_reserved_backtick", "a: `foo`\n"),
    ("error_lone_anchor", "a: &\n"),
    ("error_flow_leading_comma", "a: [, 1]\n"),
    ("error_block_sequence_in_value_line", "a: - b\n"),
    ("error_dash_value", "a: -\n"),
    ("error_key_without_colon_continuation", "a: 1\nb\n"),
    ("error_directive_after_content", "a: 1\n%YAML 1.1\n---\n"),
    ("error_unterminated_explicit_key_flow", "{? a\n"),
    ("error_tag_handle_without_suffix", "a: !!\n"),
    ("error_question_in_flow_value", "a: {b: ?}\n"),
    ("error_indented_root_after_key", "a: 1\n  b: 2\n"),

    # ------------------------------------------------------------------
    # Realistic soa-configs style documents.
    # ------------------------------------------------------------------
    (
        "realistic_flink_instance_with_merge",
        "_defaults: &defaults\n"
        "  taskmanager:\n"
        "    cpus: 1\n"
        "    mem: 2048\n"
        "  flink_conf:\n"
        "    execution.checkpointing.interval: 60s\n"
        "    state.backend: rocksdb\n"
        "main:\n"
        "  <<: *defaults\n"
        "  taskmanager:\n"
        "    instances: 4\n"
        "    cpus: 2.5\n"
        "  pool: default\n"
        "  deploy_group: prod.everything\n"
        "  team: stream # owners\n"
        "  env:\n"
        "    ENABLED: 'yes'\n"
        "    RETRIES: 3\n"
        "    PORT: '08080'\n",
    ),
    (
        "realistic_multiple_instances_list_merge",
        "_small: &small {jobmanager: {cpus: 0.5}, taskmanager: {instances: 1}}\n"
        "_prod: &prod {pool: prod, monitoring: {page: true, ticket: on}}\n"
        "a:\n  <<: [*prod, *small]\n  pool: batch\n"
        "b:\n  <<: [*small, *prod]\n  taskmanager: {instances: 010}\n",
    ),
    (
        "realistic_sequences_of_jobs",
        "main:\n"
        "  jobs:\n"
        "  - name: ingest\n"
        "    parallelism: 8\n"
        "    args: [--from, 2001-12-14x, --ratio, '0.5']\n"
        "  - name: export\n"
        "    parallelism: 0x10\n"
        "    schedule: 1:30\n"
        "    ratio: .5\n",
    ),
    (
        "realistic_config_with_date_fails",
        "main:\n  image_built: 2024-01-31\n  cpus: 1\n",
    ),
    (
        "realistic_description_block",
        "main:\n"
        "  description: >\n"
        "    Streams events from the firehose\n"
        "    into the warehouse.\n\n"
        "    Owned by the stream team.\n"
        "  notes: |\n"
        "    line one\n"
        "      indented \u00e9\n",
    ),
]


def run_case(name, text):
    record = {"name": name, "yaml": text}
    try:
        value = yaml.load(text, Loader=yaml.CSafeLoader)
    except Exception as exc:  # noqa: BLE001 - the type is the result
        record["load_error"] = type(exc).__name__
        return record
    try:
        record["json"] = json.dumps(value, sort_keys=True)
    except Exception as exc:  # noqa: BLE001
        record["dump_error"] = type(exc).__name__
    return record


def main():
    if yaml.__version__ != "6.0.3":
        sys.exit("PyYAML 6.0.3 is required (found %s): 6.0.4 changed `<<: [*a, *b]` "
                 "precedence (yaml/pyyaml#953)" % yaml.__version__)
    if not getattr(yaml, "__with_libyaml__", False) or not hasattr(yaml, "CSafeLoader"):
        sys.exit("PyYAML was built without libyaml; yaml.CSafeLoader is required")
    names = [name for name, _ in CASES]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        sys.exit("duplicate case names: %s" % ", ".join(duplicates))
    os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
    counts = {"json": 0, "load_error": 0, "dump_error": 0}
    with open(OUTPUT, "w", encoding="utf-8") as out:
        for name, text in CASES:
            record = run_case(name, text)
            for kind in counts:
                if kind in record:
                    counts[kind] += 1
            out.write(json.dumps(record, sort_keys=True) + "\n")
    print("%d cases written to %s (%s)" % (
        len(CASES), OUTPUT, ", ".join("%s: %d" % kv for kv in counts.items())), file=sys.stderr)


if __name__ == "__main__":
    main()

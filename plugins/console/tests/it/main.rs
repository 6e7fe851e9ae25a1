//! In-process tests of the console connector through the harness, reading its output from a
//! file byte for byte.

use std::path::{Path, PathBuf};

use logrelay_console::{Config, Console};
use logrelay_plugin_api::testing::{Harness, config_json_from_toml, conformance};
use logrelay_plugin_api::{ErrorKind, Level, Plugin, Record, parse_config};

/// 2023-11-14T22:13:20.123Z
const TS: i64 = 1_700_000_000_123_000_000;

fn records() -> Vec<Record> {
    vec![
        Record::new("a1", TS, Level::INFO, "shop", "cart", "paid")
            .with_attributes(r#"{"user":"ann","seq":1}"#),
        Record::new("a2", TS + 1_000_000, Level::ERROR, "shop", "", "declined")
            .with_attributes(r#"{"user":"bob","reason":"card expired"}"#),
    ]
}

struct Run {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

/// Starts an instance writing to a fresh file with `config` (TOML) after the output lines,
/// feeds it `batch`, shuts it down and gives the file's text.
fn output_of(config: &str, batch: &[Record]) -> String {
    let run = start_run();
    let h = start(&run.path, config);
    h.handle_batch(batch).expect("batch accepted");
    h.shutdown().expect("shutdown");
    read(&run.path)
}

fn start_run() -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("console.log");
    Run { _dir: dir, path }
}

fn start(path: &Path, config: &str) -> Harness {
    let toml = format!(
        "output = \"file\"\npath = {:?}\n{config}",
        path.display().to_string()
    );
    Harness::start::<Console>(&toml).expect("starts")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read output")
}

#[test]
fn passes_conformance() {
    conformance::<Console>("output = \"discard\"").expect("conformance");
}

#[test]
fn the_example_config_is_a_valid_setup() {
    let json = config_json_from_toml(Console::EXAMPLE_CONFIG).expect("toml");
    let config: Config = parse_config(&json).expect("parses");
    config.validate().expect("every value is valid");
}

#[test]
fn default_layout_into_a_file_has_no_colour() {
    // color = "auto" (the default) into a file: no escape codes.
    let out = output_of("", &records());
    assert_eq!(
        out,
        "2023-11-14T22:13:20.123+00:00 INFO shop cart paid user=ann seq=1\n\
         2023-11-14T22:13:20.124+00:00 ERROR shop declined user=bob reason=\"card expired\"\n"
    );
}

#[test]
fn control_and_bidi_characters_in_records_are_shown_escaped() {
    let hostile = Record::new(
        "x\u{202e}",
        TS,
        Level::INFO,
        "shop\x1b[2J",
        "",
        "\x1b]0;owned\x07a\nb\x7f\u{9b}31m\u{85}\u{202e}evil\u{2066}\u{2069}\u{200f}\u{61c}\tend",
    )
    .with_attributes(r#"{"u":"\u202dx\u001b","o":["\u2067"]}"#);
    for color in ["never", "always"] {
        let out = output_of(
            &format!(
                "color = \"{color}\"\n[layout]\nfields = [\"project\", \"id\", \"message\", \"attributes\"]\n\
                 styles = {{}}\nlevel_styles = {{}}\nline_styles = {{}}\n"
            ),
            std::slice::from_ref(&hostile),
        );
        assert_eq!(
            out,
            "shop\\x1b[2J x\\u{202e} \\x1b]0;owned\\x07a\\nb\\x7f\\u{9b}31m\\u{85}\\u{202e}evil\
             \\u{2066}\\u{2069}\\u{200f}\\u{61c}\tend u=\"\\u202dx\\u001b\" o=[\"\\u2067\"]\n",
            "color = {color}"
        );
    }
}

#[test]
fn never_writes_no_escape_codes_even_with_styles() {
    let out = output_of(
        "color = \"never\"\n[layout]\nfields = [\"level\", \"message\"]\n\
         [layout.styles]\nmessage = \"bold red on blue\"\n",
        &records(),
    );
    assert_eq!(out, "INFO paid\nERROR declined\n");
}

#[test]
fn always_writes_every_style_byte_for_byte() {
    let config = r##"
color = "always"
[layout]
fields = ["level", "message", "project", "attr.user", "id", "module"]
separator = " | "
[layout.styles]
level = "underline"
message = { fg = "#ff8800", bold = true }
project = { fg = 208, bg = "bright_black", italic = true }
"attr.user" = "strikethrough cyan on 17"
id = { dim = true, bg = "#010203" }
separator = "bright_black"
[layout.level_styles]
info = "green"
error = { fg = "red" }
[layout.line_styles]
error = "on white"
"##;
    let out = output_of(config, &records());
    let info = "\x1b[4m\x1b[32mINFO\x1b[0m\
                \x1b[90m | \x1b[0m\
                \x1b[1m\x1b[38;2;255;136;0mpaid\x1b[0m\
                \x1b[90m | \x1b[0m\
                \x1b[3m\x1b[38;5;208m\x1b[100mshop\x1b[0m\
                \x1b[90m | \x1b[0m\
                \x1b[9m\x1b[36m\x1b[48;5;17mann\x1b[0m\
                \x1b[90m | \x1b[0m\
                \x1b[2m\x1b[48;2;1;2;3ma1\x1b[0m\
                \x1b[90m | \x1b[0m\
                cart\n";
    // The error line: every part drawn over the white line background; the empty module is
    // left out with its separator.
    let error = "\x1b[4m\x1b[31m\x1b[47mERROR\x1b[0m\
                 \x1b[90m\x1b[47m | \x1b[0m\
                 \x1b[1m\x1b[38;2;255;136;0m\x1b[47mdeclined\x1b[0m\
                 \x1b[90m\x1b[47m | \x1b[0m\
                 \x1b[3m\x1b[38;5;208m\x1b[100mshop\x1b[0m\
                 \x1b[90m\x1b[47m | \x1b[0m\
                 \x1b[9m\x1b[36m\x1b[48;5;17mbob\x1b[0m\
                 \x1b[90m\x1b[47m | \x1b[0m\
                 \x1b[2m\x1b[48;2;1;2;3ma2\x1b[0m\n";
    assert_eq!(out, format!("{info}{error}"));

    let plain = output_of(&config.replace("\"always\"", "\"never\""), &records());
    assert_eq!(
        plain,
        "INFO | paid | shop | ann | a1 | cart\nERROR | declined | shop | bob | a2\n"
    );
}

#[test]
fn order_hidden_fields_separators_and_attributes() {
    let out = output_of(
        r#"
[layout]
fields = ["message", "level", "timestamp", "project", "attributes"]
hidden = ["project", "attr.seq"]
separator = " :: "
timestamp_format = "%H:%M:%S%.3f"
level_case = "lower"
"#,
        &records(),
    );
    assert_eq!(
        out,
        "paid :: info :: 22:13:20.123 :: user=ann\n\
         declined :: error :: 22:13:20.124 :: user=bob reason=\"card expired\"\n"
    );

    let out = output_of(
        "[layout]\nfields = [\"id\", \"attributes\"]\nattributes_format = \"json\"\n",
        &records(),
    );
    assert_eq!(
        out,
        "a1 {\"user\":\"ann\",\"seq\":1}\na2 {\"user\":\"bob\",\"reason\":\"card expired\"}\n"
    );

    // Attributes hidden altogether.
    let out = output_of(
        "[layout]\nfields = [\"message\", \"attributes\"]\nhidden = [\"attributes\"]\n",
        &records(),
    );
    assert_eq!(out, "paid\ndeclined\n");
}

#[test]
fn batches_append_and_control_characters_are_escaped() {
    let run = start_run();
    let h = start(&run.path, "[layout]\nfields = [\"message\"]\n");
    h.handle_batch(&records()).expect("first");
    h.handle_batch(&[Record::new(
        "x",
        TS,
        Level::WARNING,
        "p",
        "m",
        "two\nlines\x1b[2J",
    )])
    .expect("second");
    h.handle_batch(&[]).expect("empty");
    assert_eq!(read(&run.path), "paid\ndeclined\ntwo\\nlines\\x1b[2J\n");
    h.shutdown().expect("shutdown");
    // A second instance appends to the same file.
    let h = start(&run.path, "[layout]\nfields = [\"id\"]\n");
    h.handle_batch(&records()).expect("third");
    assert_eq!(
        read(&run.path),
        "paid\ndeclined\ntwo\\nlines\\x1b[2J\na1\na2\n"
    );
}

#[test]
fn bad_values_are_config_errors_naming_option_and_value() {
    let cases = [
        (
            "[layout.styles]\nmessage = \"bold purple\"",
            "layout.styles.message",
            "bold purple",
        ),
        (
            "[layout.styles.level]\nfg = \"#12\"",
            "layout.styles.level.fg",
            "#12",
        ),
        (
            "[layout.level_styles]\nerror = { bg = 256 }",
            "layout.level_styles.error.bg",
            "256",
        ),
        (
            "[layout]\ntimestamp_format = \"%Y-%J\"",
            "layout.timestamp_format",
            "%Y-%J",
        ),
        ("[layout]\nfields = [\"msg\"]", "layout.fields", "msg"),
        ("color = \"sometimes\"", "color", "sometimes"),
        ("output = \"printer\"", "output", "printer"),
        ("[layout]\ntimezone = \"mars\"", "layout.timezone", "mars"),
    ];
    for (config, option, value) in cases {
        let err = Harness::start::<Console>(config).err().expect(config);
        assert_eq!(err.kind, ErrorKind::CONFIG, "{config}");
        assert!(err.message.contains(option), "{config}: {err}");
        assert!(err.message.contains(value), "{config}: {err}");
    }
}

#[test]
fn output_and_path_must_agree_and_the_file_must_open() {
    let err = Harness::start::<Console>("output = \"file\"")
        .err()
        .expect("no path");
    assert_eq!(err.kind, ErrorKind::CONFIG);
    assert!(err.message.contains("`path`"), "{err}");
    let err = Harness::start::<Console>("path = \"/tmp/x.log\"")
        .err()
        .expect("stray path");
    assert!(err.message.contains("only used with"), "{err}");
    let err = Harness::start::<Console>("output = \"file\"\npath = \"/nonexistent-dir/x.log\"")
        .err()
        .expect("cannot open");
    assert_eq!(err.kind, ErrorKind::CONFIG);
    assert!(err.message.contains("/nonexistent-dir/x.log"), "{err}");
}

#[test]
fn a_failed_write_is_transient() {
    // /dev/full accepts the open and refuses every write with "no space left".
    if !Path::new("/dev/full").exists() {
        panic!("this test needs /dev/full");
    }
    let h = Harness::start::<Console>("output = \"file\"\npath = \"/dev/full\"").expect("starts");
    let err = h.handle_batch(&records()).expect_err("disk full");
    assert_eq!(err.kind, ErrorKind::TRANSIENT);
    assert!(err.message.contains("cannot write to /dev/full"), "{err}");
}

#[test]
fn stdout_stderr_and_discard_start() {
    for output in ["stdout", "stderr", "discard"] {
        let h = Harness::start::<Console>(&format!("output = \"{output}\"\ncolor = \"never\""))
            .expect(output);
        h.handle_batch(&[]).expect("empty batch");
        h.shutdown().expect("shutdown");
    }
    let h = Harness::start::<Console>("output = \"discard\"").expect("discard");
    h.handle_batch(&records()).expect("dropped");
}

//! The subset of Go's `text/template` that Skaffold evaluates inside `skaffold.yaml`.
//!
//! Skaffold templates fields such as docker `buildArgs`, the `envTemplate` tagger, helm
//! `setValueTemplates`, kubectl `defaultNamespace` and port-forward `namespace`/`resourceName`
//! over the environment (plus `IMAGE_REPO`, `IMAGE_TAG`, `IMAGE_NAME`, `IMAGE_REPO_<name>`,
//! `IMAGE_TAG_<name>` and `IMAGE_DIGEST_<name>` once images are built). A [`Template`] is parsed
//! once and rendered against any [`Vars`]; the caller supplies the variables, this module never
//! reads the process environment.
//!
//! Supported syntax:
//!
//! * text with `{{ ... }}` actions, the trim markers `{{- ` and ` -}}`, and comments
//!   `{{/* ... */}}`;
//! * operands: variable references `.NAME`, string literals (`"..."` with Go escapes and raw
//!   `` `...` ``), numbers, character constants, `true` and `false`, and parenthesised pipelines;
//! * pipelines `a | f x`, where the piped value becomes the *last* argument, as in Go;
//! * the functions `default`, `or`, `and`, `not`, `eq`, `ne`, `lower`/`toLower`,
//!   `upper`/`toUpper`, `trim`, `trimPrefix`, `trimSuffix`, `replace`, `quote`, `printf`
//!   (verbs `%s`, `%v`, `%d`, `%q` and `%%`) and `env`.
//!
//! Control structures (`if`, `range`, `with`, `define`, ...) and template variables (`$x`) are
//! rejected with [`TemplateError::UnsupportedAction`] or [`TemplateError::Syntax`]. Unknown
//! functions and wrong argument counts are reported when parsing, not when rendering.
//!
//! Unlike Go, which renders `<no value>`, a reference to a variable that is not set is an error
//! ([`TemplateError::MissingVariable`]) — unless the value is consumed by `default` (as its value
//! argument, written directly or piped), `or` or `and`, which see a missing variable as the empty
//! string. Function arguments are converted to their Go `%v` text where a string is expected.
//!
//! ```
//! use std::collections::BTreeMap;
//! use skiff_types::template::Template;
//!
//! let template = Template::parse(r#"{{ .IMAGE_REPO }}:{{ .TAG | default "latest" | lower }}"#)?;
//! assert_eq!(template.variables(), ["IMAGE_REPO", "TAG"]);
//!
//! let mut vars = BTreeMap::new();
//! vars.insert("IMAGE_REPO".to_string(), "gcr.io/k8s-skaffold/app".to_string());
//! assert_eq!(template.render(&vars)?, "gcr.io/k8s-skaffold/app:latest");
//!
//! vars.insert("TAG".to_string(), "V1".to_string());
//! assert_eq!(template.render(&vars)?, "gcr.io/k8s-skaffold/app:v1");
//! # Ok::<(), skiff_types::template::TemplateError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;

/// How deeply parenthesised expressions may nest before parsing gives up.
pub const MAX_NESTING: usize = 64;

/// The characters trim markers remove, as in Go.
const TRIM_SPACE: &[char] = &[' ', '\t', '\r', '\n'];

/// A source of template variables, looked up by name (`.NAME` and `env "NAME"`).
pub trait Vars {
    /// The value of the variable `name`, or `None` if it is not set.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Vars for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl<S: BuildHasher> Vars for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

/// Several variable sources consulted in order; the first that has a variable wins.
///
/// ```
/// use std::collections::BTreeMap;
/// use skiff_types::template::{LayeredVars, Vars};
///
/// let images = BTreeMap::from([("IMAGE_TAG".to_string(), "abc".to_string())]);
/// let env = BTreeMap::from([
///     ("IMAGE_TAG".to_string(), "ignored".to_string()),
///     ("USER".to_string(), "dev".to_string()),
/// ]);
/// let vars = LayeredVars(vec![&images, &env]);
/// assert_eq!(vars.get("IMAGE_TAG"), Some("abc"));
/// assert_eq!(vars.get("USER"), Some("dev"));
/// assert_eq!(vars.get("HOME"), None);
/// ```
#[derive(Clone, Default)]
pub struct LayeredVars<'a>(pub Vec<&'a dyn Vars>);

impl Vars for LayeredVars<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find_map(|layer| layer.get(name))
    }
}

impl fmt::Debug for LayeredVars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayeredVars")
            .field("layers", &self.0.len())
            .finish()
    }
}

/// Why a template could not be parsed or rendered.
///
/// Offsets are byte offsets into [`Template::source`]. The messages do not name the
/// `skaffold.yaml` field; callers add that.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template is not well formed.
    #[error("template syntax error at byte {offset}: {message}")]
    Syntax {
        /// Where the problem was found.
        offset: usize,
        /// What is wrong, e.g. "unclosed action" or "unknown function `foo`".
        message: String,
    },
    /// The template references a variable that is not set, outside `default`, `or` and `and`.
    #[error("template variable `{name}` is not set")]
    MissingVariable {
        /// The variable name, without the leading dot.
        name: String,
    },
    /// The template uses a Go template construct that skiff does not evaluate.
    #[error(
        "`{action}` at byte {offset} is not supported in skiff templates; only values, pipelines and functions are"
    )]
    UnsupportedAction {
        /// Where the construct starts.
        offset: usize,
        /// The keyword, e.g. `if` or `range`.
        action: String,
    },
    /// A function could not be applied to the values it was given while rendering.
    #[error("function `{function}` at byte {offset} failed: {reason}")]
    InvalidArgument {
        /// Where the function is called.
        offset: usize,
        /// The function name as written.
        function: String,
        /// What is wrong with its arguments.
        reason: String,
    },
}

fn syntax(offset: usize, message: impl Into<String>) -> TemplateError {
    TemplateError::Syntax {
        offset,
        message: message.into(),
    }
}

/// A parsed template: the source text and the tree rendering walks.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

impl Template {
    /// Parses `source`, reporting syntax errors, unknown functions, wrong argument counts and
    /// unsupported actions.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let nodes = parse_nodes(source)?;
        Ok(Template {
            source: source.to_owned(),
            nodes,
        })
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template has no actions other than comments, so rendering needs no
    /// variables and cannot fail. The rendered text can still differ from the source when trim
    /// markers or comments are present.
    pub fn is_literal(&self) -> bool {
        self.nodes.iter().all(|node| matches!(node, Node::Text(_)))
    }

    /// The variables the template references, in order of first appearance and without
    /// duplicates: every `.NAME`, and every `env "NAME"` whose argument is a string literal.
    ///
    /// Variables that `default`, `or` and `and` tolerate being unset are included too, since
    /// their value still changes the output.
    pub fn variables(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for node in &self.nodes {
            if let Node::Action(pipeline) = node {
                collect_pipeline(pipeline, &mut names);
            }
        }
        names
    }

    /// Renders the template with `vars`; a variable that is not set is an error (Go's
    /// `missingkey=error`, what Skaffold asks for in helm release names, chart paths and
    /// namespaces, port-forward targets and the `customTemplate` tagger).
    pub fn render(&self, vars: &dyn Vars) -> Result<String, TemplateError> {
        self.render_with(vars, MissingKey::Error)
    }

    /// Renders the template with `vars`, treating a variable that is not set as `missing`
    /// says.
    pub fn render_with(
        &self,
        vars: &dyn Vars,
        missing: MissingKey,
    ) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len());
        for node in &self.nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Action(pipeline) => {
                    if missing == MissingKey::NoValue {
                        if let Some(name) = pipeline.bare_field() {
                            if vars.get(name).is_none() {
                                out.push_str(NO_VALUE);
                                continue;
                            }
                        }
                    }
                    let value = eval_pipeline(pipeline, vars, false)?;
                    value.write_to(&mut out);
                }
            }
        }
        Ok(out)
    }

    /// The variables the template prints directly (`{{.NAME}}`) that `vars` does not set:
    /// those [`MissingKey::NoValue`] renders as `<no value>`.
    pub fn unset_variables<'a>(&'a self, vars: &dyn Vars) -> Vec<&'a str> {
        let mut names = Vec::new();
        for node in &self.nodes {
            if let Node::Action(pipeline) = node {
                if let Some(name) = pipeline.bare_field() {
                    if vars.get(name).is_none() && !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        names
    }
}

/// An image name as it appears in template variable names (`IMAGE_REPO_<suffix>`): every
/// character that cannot be part of a template identifier (`/`, `-`, `.`, `:`) becomes `_`.
///
/// ```
/// assert_eq!(skiff_types::template::image_variable_suffix("gcr.io/p/web-app"), "gcr_io_p_web_app");
/// ```
pub fn image_variable_suffix(image_name: &str) -> String {
    image_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What Go prints for a map key that is not set, under its default `missingkey` option.
pub const NO_VALUE: &str = "<no value>";

/// How rendering treats a variable that is not set, as Go's `missingkey` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingKey {
    /// [`TemplateError::MissingVariable`] (`missingkey=error`).
    Error,
    /// `<no value>` where the variable is printed directly, as Go's default does (Skaffold's
    /// `ExpandEnvTemplate`, used for build args, ko settings, values files, …); a variable
    /// that is not set in a function's argument stays an error, as in Go.
    NoValue,
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(source: &str) -> Result<Self, Self::Err> {
        Template::parse(source)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

// ---------------------------------------------------------------------------------------------
// Tree

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
}

/// `head | tail[0] | tail[1] ...`; each tail call receives the previous value as its last
/// argument.
#[derive(Clone, Debug, PartialEq)]
struct Pipeline {
    head: Expr,
    tail: Vec<Call>,
}

impl Pipeline {
    /// The variable when the pipeline is only a variable reference (`.NAME`, `(.NAME)`).
    fn bare_field(&self) -> Option<&str> {
        if !self.tail.is_empty() {
            return None;
        }
        match &self.head {
            Expr::Field { name } => Some(name),
            Expr::Paren(inner) => inner.bare_field(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Call {
    func: Func,
    name: &'static str,
    args: Vec<Expr>,
    offset: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Field { name: String },
    Lit { value: Value, offset: usize },
    Call(Call),
    Paren(Box<Pipeline>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Default,
    Or,
    And,
    Not,
    Eq,
    Ne,
    Lower,
    Upper,
    Trim,
    TrimPrefix,
    TrimSuffix,
    Replace,
    Quote,
    Printf,
    Env,
}

enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

const FUNCTIONS: &[(&str, Func)] = &[
    ("default", Func::Default),
    ("or", Func::Or),
    ("and", Func::And),
    ("not", Func::Not),
    ("eq", Func::Eq),
    ("ne", Func::Ne),
    ("lower", Func::Lower),
    ("toLower", Func::Lower),
    ("upper", Func::Upper),
    ("toUpper", Func::Upper),
    ("trim", Func::Trim),
    ("trimPrefix", Func::TrimPrefix),
    ("trimSuffix", Func::TrimSuffix),
    ("replace", Func::Replace),
    ("quote", Func::Quote),
    ("printf", Func::Printf),
    ("env", Func::Env),
];

/// Go template keywords for constructs skiff does not evaluate.
const UNSUPPORTED_KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

impl Func {
    fn lookup(name: &str) -> Option<(Func, &'static str)> {
        FUNCTIONS
            .iter()
            .find(|(candidate, _)| *candidate == name)
            .map(|&(name, func)| (func, name))
    }

    fn arity(self) -> Arity {
        match self {
            Func::Default | Func::Ne | Func::TrimPrefix | Func::TrimSuffix => Arity::Exactly(2),
            Func::Not | Func::Lower | Func::Upper | Func::Trim | Func::Env => Arity::Exactly(1),
            Func::Replace => Arity::Exactly(3),
            Func::Or | Func::And | Func::Printf => Arity::AtLeast(1),
            Func::Eq => Arity::AtLeast(2),
            Func::Quote => Arity::AtLeast(0),
        }
    }

    /// Whether argument `index` sees an unset variable as the empty string.
    fn tolerates_missing(self, index: usize) -> bool {
        match self {
            Func::Default => index == 1,
            Func::Or | Func::And => true,
            _ => false,
        }
    }
}

fn check_arity(call: &Call, piped: bool) -> Result<(), TemplateError> {
    let got = call.args.len() + usize::from(piped);
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    match call.func.arity() {
        Arity::Exactly(n) if got != n => Err(syntax(
            call.offset,
            format!(
                "function `{}` takes {n} {}, got {got}",
                call.name,
                plural(n)
            ),
        )),
        Arity::AtLeast(n) if got < n => Err(syntax(
            call.offset,
            format!(
                "function `{}` takes at least {n} {}, got {got}",
                call.name,
                plural(n)
            ),
        )),
        _ => Ok(()),
    }
}

fn collect_pipeline<'a>(pipeline: &'a Pipeline, names: &mut Vec<&'a str>) {
    collect_expr(&pipeline.head, names);
    for call in &pipeline.tail {
        collect_call(call, names);
    }
}

fn collect_call<'a>(call: &'a Call, names: &mut Vec<&'a str>) {
    if let (
        Func::Env,
        Some(Expr::Lit {
            value: Value::Str(name),
            ..
        }),
    ) = (call.func, call.args.first())
    {
        push_unique(names, name);
    }
    for arg in &call.args {
        collect_expr(arg, names);
    }
}

fn collect_expr<'a>(expr: &'a Expr, names: &mut Vec<&'a str>) {
    match expr {
        Expr::Field { name } => push_unique(names, name),
        Expr::Lit { .. } => {}
        Expr::Call(call) => collect_call(call, names),
        Expr::Paren(pipeline) => collect_pipeline(pipeline, names),
    }
}

fn push_unique<'a>(names: &mut Vec<&'a str>, name: &'a str) {
    if !names.contains(&name) {
        names.push(name);
    }
}

// ---------------------------------------------------------------------------------------------
// Values

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bool(b) => *b,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
        }
    }

    /// Appends the value as Go's `%v` prints it.
    fn write_to(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(s),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&go_float(*f)),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }

    fn into_text(self) -> String {
        match self {
            Value::Str(s) => s,
            other => {
                let mut out = String::new();
                other.write_to(&mut out);
                out
            }
        }
    }
}

/// Formats a float like Go's `%v` (shortest `%g` with the exponent threshold of 6).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return f.to_string();
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return f.to_string();
    };
    if (-4..6).contains(&exponent) {
        f.to_string()
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// Quotes like Go's `strconv.Quote` (or `QuoteRune` with `'`).
fn go_quote(s: &str, quote: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Go's `fmt.Sprintf` restricted to `%s`, `%v`, `%d`, `%q` and `%%`, with Go's in-band
/// reports for missing, extra and mistyped arguments.
fn go_sprintf(format: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::with_capacity(format.len());
    let mut chars = format.chars();
    let mut next = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => out.push_str("%!(NOVERB)"),
            Some('%') => out.push('%'),
            Some(verb @ ('s' | 'v' | 'd' | 'q')) => match args.get(next) {
                None => out.push_str(&format!("%!{verb}(MISSING)")),
                Some(arg) => {
                    next += 1;
                    format_verb(&mut out, verb, arg);
                }
            },
            Some(other) => return Err(unsupported_verb(other)),
        }
    }
    if let Some(extra) = args.get(next..).filter(|extra| !extra.is_empty()) {
        out.push_str("%!(EXTRA ");
        for (i, arg) in extra.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(arg.type_name());
            out.push('=');
            arg.write_to(&mut out);
        }
        out.push(')');
    }
    Ok(out)
}

fn unsupported_verb(verb: char) -> String {
    format!("unsupported printf verb `%{verb}`; only %s, %v, %d, %q and %% are supported")
}

/// Checks a literal `printf` format when parsing.
fn check_format(format: &str) -> Result<(), String> {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                None | Some('%' | 's' | 'v' | 'd' | 'q') => {}
                Some(other) => return Err(unsupported_verb(other)),
            }
        }
    }
    Ok(())
}

fn format_verb(out: &mut String, verb: char, arg: &Value) {
    match (verb, arg) {
        ('v', arg) | ('s', arg @ Value::Str(_)) | ('d', arg @ Value::Int(_)) => arg.write_to(out),
        ('q', Value::Str(s)) => out.push_str(&go_quote(s, '"')),
        ('q', Value::Int(i)) => {
            let c = u32::try_from(*i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            out.push_str(&go_quote(c.encode_utf8(&mut [0; 4]), '\''));
        }
        (verb, arg) => {
            out.push_str(&format!("%!{verb}({}=", arg.type_name()));
            arg.write_to(out);
            out.push(')');
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

fn eval_pipeline(
    pipeline: &Pipeline,
    vars: &dyn Vars,
    tolerate_missing: bool,
) -> Result<Value, TemplateError> {
    let head_tolerates = match pipeline.tail.first() {
        None => tolerate_missing,
        Some(call) => call.func.tolerates_missing(call.args.len()),
    };
    let mut value = eval_expr(&pipeline.head, vars, head_tolerates)?;
    for call in &pipeline.tail {
        value = eval_call(call, vars, Some(value))?;
    }
    Ok(value)
}

fn eval_expr(expr: &Expr, vars: &dyn Vars, tolerate_missing: bool) -> Result<Value, TemplateError> {
    match expr {
        Expr::Field { name } => match vars.get(name) {
            Some(value) => Ok(Value::Str(value.to_owned())),
            None if tolerate_missing => Ok(Value::Str(String::new())),
            None => Err(TemplateError::MissingVariable { name: name.clone() }),
        },
        Expr::Lit { value, .. } => Ok(value.clone()),
        Expr::Call(call) => eval_call(call, vars, None),
        Expr::Paren(pipeline) => eval_pipeline(pipeline, vars, tolerate_missing),
    }
}

fn eval_call(call: &Call, vars: &dyn Vars, piped: Option<Value>) -> Result<Value, TemplateError> {
    if matches!(call.func, Func::Or | Func::And) {
        // Go 1.18+ evaluates `and`/`or` arguments lazily, left to right.
        let stop_on = call.func == Func::Or;
        let mut last = None;
        for arg in &call.args {
            let value = eval_expr(arg, vars, true)?;
            if value.truthy() == stop_on {
                return Ok(value);
            }
            last = Some(value);
        }
        if let Some(value) = piped {
            return Ok(value);
        }
        return Ok(last.unwrap_or_else(|| Value::Str(String::new())));
    }

    let mut args = Vec::with_capacity(call.args.len() + 1);
    for (index, arg) in call.args.iter().enumerate() {
        args.push(eval_expr(arg, vars, call.func.tolerates_missing(index))?);
    }
    args.extend(piped);
    apply(call, args, vars)
}

fn apply(call: &Call, args: Vec<Value>, vars: &dyn Vars) -> Result<Value, TemplateError> {
    let fail = |reason: String| TemplateError::InvalidArgument {
        offset: call.offset,
        function: call.name.to_owned(),
        reason,
    };
    let count = args.len();
    let wrong_count = || fail(format!("unexpected number of arguments ({count})"));
    let value = match call.func {
        Func::Default => {
            let [fallback, value] = exactly(args).ok_or_else(wrong_count)?;
            if value.truthy() { value } else { fallback }
        }
        Func::Or | Func::And => return Err(wrong_count()),
        Func::Not => {
            let [value] = exactly(args).ok_or_else(wrong_count)?;
            Value::Bool(!value.truthy())
        }
        Func::Eq => {
            let mut args = args.into_iter();
            let first = args.next().ok_or_else(wrong_count)?;
            let mut equal = false;
            for other in args {
                if go_eq(&first, &other).map_err(fail)? {
                    equal = true;
                    break;
                }
            }
            Value::Bool(equal)
        }
        Func::Ne => {
            let [a, b] = exactly(args).ok_or_else(wrong_count)?;
            Value::Bool(!go_eq(&a, &b).map_err(fail)?)
        }
        Func::Lower => {
            let [value] = exactly(args).ok_or_else(wrong_count)?;
            Value::Str(value.into_text().to_lowercase())
        }
        Func::Upper => {
            let [value] = exactly(args).ok_or_else(wrong_count)?;
            Value::Str(value.into_text().to_uppercase())
        }
        Func::Trim => {
            let [value] = exactly(args).ok_or_else(wrong_count)?;
            Value::Str(value.into_text().trim().to_owned())
        }
        Func::TrimPrefix => {
            let [prefix, value] = exactly(args).ok_or_else(wrong_count)?;
            let (prefix, value) = (prefix.into_text(), value.into_text());
            Value::Str(
                value
                    .strip_prefix(prefix.as_str())
                    .unwrap_or(&value)
                    .to_owned(),
            )
        }
        Func::TrimSuffix => {
            let [suffix, value] = exactly(args).ok_or_else(wrong_count)?;
            let (suffix, value) = (suffix.into_text(), value.into_text());
            Value::Str(
                value
                    .strip_suffix(suffix.as_str())
                    .unwrap_or(&value)
                    .to_owned(),
            )
        }
        Func::Replace => {
            let [old, new, value] = exactly(args).ok_or_else(wrong_count)?;
            Value::Str(
                value
                    .into_text()
                    .replace(old.into_text().as_str(), &new.into_text()),
            )
        }
        Func::Quote => {
            let quoted: Vec<String> = args
                .into_iter()
                .map(|arg| go_quote(&arg.into_text(), '"'))
                .collect();
            Value::Str(quoted.join(" "))
        }
        Func::Printf => {
            let mut args = args.into_iter();
            let format = args.next().ok_or_else(wrong_count)?.into_text();
            let rest: Vec<Value> = args.collect();
            Value::Str(go_sprintf(&format, &rest).map_err(fail)?)
        }
        Func::Env => {
            let [name] = exactly(args).ok_or_else(wrong_count)?;
            Value::Str(vars.get(&name.into_text()).unwrap_or_default().to_owned())
        }
    };
    Ok(value)
}

fn exactly<const N: usize>(args: Vec<Value>) -> Option<[Value; N]> {
    args.try_into().ok()
}

/// Go's `eq` on basic values: same kinds compare, different kinds are an error.
fn go_eq(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Str(a), Value::Str(b)) => Ok(a == b),
        (Value::Int(a), Value::Int(b)) => Ok(a == b),
        (Value::Float(a), Value::Float(b)) => Ok(a == b),
        (Value::Bool(a), Value::Bool(b)) => Ok(a == b),
        (a, b) => Err(format!(
            "incompatible types for comparison ({} and {}); variables are strings, so compare them with quoted literals",
            a.type_name(),
            b.type_name()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Lexing

fn is_trim_space(c: char) -> bool {
    TRIM_SPACE.contains(&c)
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits `source` into text and actions, then parses each action.
fn parse_nodes(source: &str) -> Result<Vec<Node>, TemplateError> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    loop {
        let rest = source.get(pos..).unwrap_or_default();
        let open = rest.find("{{").map(|i| pos + i);
        let text_end = open.unwrap_or(source.len());
        let mut text = source.get(pos..text_end).unwrap_or_default();
        if trim_next {
            text = text.trim_start_matches(TRIM_SPACE);
        }
        let Some(open) = open else {
            push_text(&mut nodes, text);
            break;
        };
        let mut inner = open + 2;
        let after = source.get(inner..).unwrap_or_default();
        let mut after_chars = after.chars();
        if after_chars.next() == Some('-') && after_chars.next().is_some_and(is_trim_space) {
            text = text.trim_end_matches(TRIM_SPACE);
            inner += 2;
        }
        push_text(&mut nodes, text);

        let action = lex_action(source, open, inner)?;
        pos = action.end;
        trim_next = action.trim_right;
        if let Some(tokens) = action.tokens {
            let mut parser = Parser {
                tokens: &tokens,
                pos: 0,
                close: action.close,
            };
            let pipeline = parser.parse_pipeline(0)?;
            if let Some(token) = parser.peek() {
                return Err(syntax(
                    token.offset,
                    format!("unexpected {}", token.kind.describe()),
                ));
            }
            nodes.push(Node::Action(pipeline));
        }
    }
    Ok(nodes)
}

fn push_text(nodes: &mut Vec<Node>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Node::Text(previous)) = nodes.last_mut() {
        previous.push_str(text);
    } else {
        nodes.push(Node::Text(text.to_owned()));
    }
}

#[derive(Debug)]
enum TokenKind {
    Field(String),
    Ident(String),
    Str(String),
    Num(Value),
    Bool(bool),
    Pipe,
    LParen,
    RParen,
}

impl TokenKind {
    fn describe(&self) -> String {
        match self {
            TokenKind::Field(name) => format!("`.{name}`"),
            TokenKind::Ident(name) => format!("`{name}`"),
            TokenKind::Str(_) => "string".to_owned(),
            TokenKind::Num(_) => "number".to_owned(),
            TokenKind::Bool(b) => format!("`{b}`"),
            TokenKind::Pipe => "`|`".to_owned(),
            TokenKind::LParen => "`(`".to_owned(),
            TokenKind::RParen => "`)`".to_owned(),
        }
    }
}

#[derive(Debug)]
struct Token {
    kind: TokenKind,
    offset: usize,
    /// Whether whitespace separates this token from the previous one in the action.
    spaced: bool,
}

struct LexedAction {
    /// `None` for a comment.
    tokens: Option<Vec<Token>>,
    /// Offset of the closing `}}` (or of the ` -}}` marker).
    close: usize,
    /// Offset just past the closing delimiter.
    end: usize,
    trim_right: bool,
}

/// A position in the source that only ever moves by whole characters.
struct Cursor<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Cursor<'s> {
    fn rest(&self) -> &'s str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        let mut chars = self.rest().chars();
        chars.next();
        chars.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, prefix: &str) -> bool {
        if self.rest().starts_with(prefix) {
            self.pos += prefix.len();
            true
        } else {
            false
        }
    }

    /// At ` -}}` (any trim space followed by `-}}`)?
    fn at_trim_close(&self) -> bool {
        let mut chars = self.rest().chars();
        match chars.next() {
            Some(c) if is_trim_space(c) => chars.as_str().starts_with("-}}"),
            _ => false,
        }
    }
}

/// Lexes the action opened at `open` whose content starts at `inner` (after any `{{- `).
fn lex_action(source: &str, open: usize, inner: usize) -> Result<LexedAction, TemplateError> {
    let mut cur = Cursor {
        src: source,
        pos: inner,
    };

    if cur.rest().starts_with("/*") {
        let body = cur.pos + 2;
        let Some(close) = source.get(body..).and_then(|rest| rest.find("*/")) else {
            return Err(syntax(open, "unclosed comment"));
        };
        cur.pos = body + close + 2;
        let close = cur.pos;
        if cur.at_trim_close() {
            cur.pos += 4;
            return Ok(LexedAction {
                tokens: None,
                close,
                end: cur.pos,
                trim_right: true,
            });
        }
        if cur.eat("}}") {
            return Ok(LexedAction {
                tokens: None,
                close,
                end: cur.pos,
                trim_right: false,
            });
        }
        return Err(syntax(close, "comment ends before closing delimiter"));
    }

    let mut tokens = Vec::new();
    let mut spaced = true;
    loop {
        let Some(c) = cur.peek() else {
            return Err(syntax(open, "unclosed action"));
        };
        if cur.at_trim_close() {
            let close = cur.pos;
            cur.pos += 4;
            return Ok(LexedAction {
                tokens: Some(tokens),
                close,
                end: cur.pos,
                trim_right: true,
            });
        }
        if is_trim_space(c) {
            cur.bump();
            spaced = true;
            continue;
        }
        let offset = cur.pos;
        if cur.eat("}}") {
            return Ok(LexedAction {
                tokens: Some(tokens),
                close: offset,
                end: cur.pos,
                trim_right: false,
            });
        }
        let kind = match c {
            '|' => {
                cur.bump();
                TokenKind::Pipe
            }
            '(' => {
                cur.bump();
                TokenKind::LParen
            }
            ')' => {
                cur.bump();
                TokenKind::RParen
            }
            '"' => TokenKind::Str(lex_quoted(&mut cur)?),
            '`' => TokenKind::Str(lex_raw(&mut cur)?),
            '\'' => TokenKind::Num(lex_char(&mut cur)?),
            '.' if cur.peek_second().is_some_and(|c| c.is_ascii_digit()) => {
                TokenKind::Num(lex_number(&mut cur)?)
            }
            '.' => lex_field(&mut cur)?,
            '+' | '-' | '0'..='9' => TokenKind::Num(lex_number(&mut cur)?),
            c if is_ident_start(c) => lex_word(&mut cur)?,
            '$' => {
                return Err(syntax(
                    offset,
                    "template variables (`$name`) are not supported",
                ));
            }
            '/' if cur.rest().starts_with("/*") => {
                return Err(syntax(
                    offset,
                    "a comment must fill the whole action, as in `{{/* ... */}}`",
                ));
            }
            c => {
                return Err(syntax(
                    offset,
                    format!("unexpected character `{}` in action", c.escape_debug()),
                ));
            }
        };
        tokens.push(Token {
            kind,
            offset,
            spaced,
        });
        spaced = false;
    }
}

fn lex_word(cur: &mut Cursor<'_>) -> Result<TokenKind, TemplateError> {
    let start = cur.pos;
    while cur.peek().is_some_and(is_ident_char) {
        cur.bump();
    }
    let word = cur.src.get(start..cur.pos).unwrap_or_default();
    match word {
        "true" => Ok(TokenKind::Bool(true)),
        "false" => Ok(TokenKind::Bool(false)),
        "nil" => Err(syntax(start, "`nil` is not supported")),
        word if UNSUPPORTED_KEYWORDS.contains(&word) => Err(TemplateError::UnsupportedAction {
            offset: start,
            action: word.to_owned(),
        }),
        word => Ok(TokenKind::Ident(word.to_owned())),
    }
}

fn lex_field(cur: &mut Cursor<'_>) -> Result<TokenKind, TemplateError> {
    let start = cur.pos;
    cur.bump(); // '.'
    let name_start = cur.pos;
    while cur.peek().is_some_and(is_ident_char) {
        cur.bump();
    }
    let name = cur.src.get(name_start..cur.pos).unwrap_or_default();
    if name.is_empty() {
        return Err(syntax(
            start,
            "`.` alone (all variables) cannot be used; reference one variable as `.NAME`",
        ));
    }
    if cur.peek() == Some('.') && cur.peek_second().is_some_and(is_ident_start) {
        return Err(syntax(
            start,
            "nested field references like `.A.B` are not supported; variables are plain strings",
        ));
    }
    Ok(TokenKind::Field(name.to_owned()))
}

fn lex_number(cur: &mut Cursor<'_>) -> Result<Value, TemplateError> {
    let start = cur.pos;
    if matches!(cur.peek(), Some('+' | '-')) {
        cur.bump();
    }
    let mut previous = None;
    while let Some(c) = cur.peek() {
        let exponent_sign =
            matches!(c, '+' | '-') && matches!(previous, Some('e' | 'E' | 'p' | 'P'));
        if !(is_ident_char(c) || c == '.' || exponent_sign) {
            break;
        }
        previous = Some(c);
        cur.bump();
    }
    let text = cur.src.get(start..cur.pos).unwrap_or_default();
    parse_number(text).map_err(|reason| syntax(start, reason))
}

fn parse_number(text: &str) -> Result<Value, String> {
    let bad = || format!("bad number syntax: `{text}`");
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or_default()),
        Some(b'+') => (false, text.get(1..).unwrap_or_default()),
        _ => (false, text),
    };
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    if body.ends_with('i') {
        return Err("complex numbers are not supported".to_owned());
    }
    let digits: String = body.chars().filter(|&c| c != '_').collect();
    let lower = digits.to_ascii_lowercase();
    let radix_digits = if let Some(rest) = lower.strip_prefix("0x") {
        Some((rest, 16))
    } else if let Some(rest) = lower.strip_prefix("0o") {
        Some((rest, 8))
    } else if let Some(rest) = lower.strip_prefix("0b") {
        Some((rest, 2))
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        Some((lower.get(1..).unwrap_or_default(), 8))
    } else if !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit()) {
        Some((lower.as_str(), 10))
    } else {
        None
    };
    if let Some((digits, radix)) = radix_digits {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(bad());
        }
        let magnitude = u64::from_str_radix(digits, radix)
            .map_err(|_| format!("integer `{text}` is out of range"))?;
        let value = if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        };
        return value
            .map(Value::Int)
            .ok_or_else(|| format!("integer `{text}` is out of range"));
    }
    let valid_float = lower
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'));
    match lower.parse::<f64>() {
        Ok(f) if valid_float && f.is_finite() => Ok(Value::Float(if negative { -f } else { f })),
        _ => Err(bad()),
    }
}

/// Reads the escape after a backslash; returns the bytes it stands for.
fn lex_escape(cur: &mut Cursor<'_>, quote: char, out: &mut Vec<u8>) -> Result<(), TemplateError> {
    let offset = cur.pos;
    cur.bump(); // '\\'
    let bad = |what: &str| syntax(offset, format!("invalid escape sequence {what}"));
    let Some(c) = cur.bump() else {
        return Err(bad("at end of input"));
    };
    let simple = match c {
        'a' => Some(b'\x07'),
        'b' => Some(b'\x08'),
        'f' => Some(b'\x0c'),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(b'\x0b'),
        '\\' => Some(b'\\'),
        c if c == quote => u8::try_from(c).ok(),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return Ok(());
    }
    let (count, radix) = match c {
        'x' => (2, 16),
        'u' => (4, 16),
        'U' => (8, 16),
        '0'..='7' => (2, 8),
        c => return Err(bad(&format!("`\\{}`", c.escape_debug()))),
    };
    let mut value = if radix == 8 {
        c.to_digit(8).unwrap_or(0)
    } else {
        0
    };
    for _ in 0..count {
        let digit = cur.peek().and_then(|d| d.to_digit(radix));
        let Some(digit) = digit else {
            return Err(bad(&format!("`\\{c}...`")));
        };
        cur.bump();
        value = value.saturating_mul(radix).saturating_add(digit);
    }
    match c {
        'x' | '0'..='7' => {
            let byte = u8::try_from(value).map_err(|_| bad("(octal value above 255)"))?;
            out.push(byte);
        }
        _ => {
            let ch =
                char::from_u32(value).ok_or_else(|| bad("(not a valid Unicode code point)"))?;
            out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }
    Ok(())
}

fn lex_quoted(cur: &mut Cursor<'_>) -> Result<String, TemplateError> {
    let start = cur.pos;
    cur.bump(); // '"'
    let mut bytes = Vec::new();
    loop {
        match cur.peek() {
            None | Some('\n') => return Err(syntax(start, "unterminated string")),
            Some('"') => {
                cur.bump();
                break;
            }
            Some('\\') => lex_escape(cur, '"', &mut bytes)?,
            Some(c) => {
                bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                cur.bump();
            }
        }
    }
    String::from_utf8(bytes).map_err(|_| syntax(start, "string literal is not valid UTF-8"))
}

fn lex_raw(cur: &mut Cursor<'_>) -> Result<String, TemplateError> {
    let start = cur.pos;
    cur.bump(); // '`'
    let rest = cur.rest();
    let Some(end) = rest.find('`') else {
        return Err(syntax(start, "unterminated raw string"));
    };
    let text = rest.get(..end).unwrap_or_default().to_owned();
    cur.pos += end + 1;
    Ok(text)
}

fn lex_char(cur: &mut Cursor<'_>) -> Result<Value, TemplateError> {
    let start = cur.pos;
    cur.bump(); // '\''
    let mut bytes = Vec::new();
    match cur.peek() {
        None | Some('\n' | '\'') => return Err(syntax(start, "malformed character constant")),
        Some('\\') => lex_escape(cur, '\'', &mut bytes)?,
        Some(c) => {
            bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            cur.bump();
        }
    }
    if !cur.eat("'") {
        return Err(syntax(start, "unterminated character constant"));
    }
    let value = match std::str::from_utf8(&bytes) {
        Ok(s) => s.chars().next().map_or(0, u32::from),
        // A single `\x`/octal byte escape: Go takes its numeric value.
        Err(_) => bytes.first().copied().map_or(0, u32::from),
    };
    Ok(Value::Int(i64::from(value)))
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    /// Offset of the action's closing delimiter, for errors at the end of the action.
    close: usize,
}

enum Operand {
    Expr(Expr, usize),
    Func(Func, &'static str, usize),
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn at_command_end(&self) -> bool {
        matches!(
            self.peek().map(|t| &t.kind),
            None | Some(TokenKind::Pipe | TokenKind::RParen)
        )
    }

    fn parse_pipeline(&mut self, depth: usize) -> Result<Pipeline, TemplateError> {
        let head = self.parse_command(depth)?;
        if let Expr::Call(call) = &head {
            check_arity(call, false)?;
        }
        let mut tail = Vec::new();
        while let Some(Token {
            kind: TokenKind::Pipe,
            ..
        }) = self.peek()
        {
            self.pos += 1;
            let offset = self.peek().map_or(self.close, |t| t.offset);
            match self.parse_command(depth)? {
                Expr::Call(call) => {
                    check_arity(&call, true)?;
                    tail.push(call);
                }
                _ => {
                    return Err(syntax(offset, "only a function can receive a piped value"));
                }
            }
        }
        Ok(Pipeline { head, tail })
    }

    fn parse_command(&mut self, depth: usize) -> Result<Expr, TemplateError> {
        if self.at_command_end() {
            let offset = self.peek().map_or(self.close, |t| t.offset);
            return Err(syntax(offset, "missing value for command"));
        }
        match self.parse_operand(depth)? {
            Operand::Func(func, name, offset) => {
                let mut args = Vec::new();
                while !self.at_command_end() {
                    self.expect_separated()?;
                    let arg = match self.parse_operand(depth)? {
                        Operand::Expr(expr, _) => expr,
                        Operand::Func(func, name, offset) => {
                            let call = Call {
                                func,
                                name,
                                args: Vec::new(),
                                offset,
                            };
                            check_arity(&call, false)?;
                            Expr::Call(call)
                        }
                    };
                    args.push(arg);
                }
                if let (
                    Func::Printf,
                    Some(Expr::Lit {
                        value: Value::Str(format),
                        offset,
                    }),
                ) = (func, args.first())
                {
                    check_format(format).map_err(|reason| syntax(*offset, reason))?;
                }
                Ok(Expr::Call(Call {
                    func,
                    name,
                    args,
                    offset,
                }))
            }
            Operand::Expr(expr, offset) => {
                if !self.at_command_end() {
                    self.expect_separated()?;
                    return Err(syntax(
                        offset,
                        "only a function can take arguments; this value cannot",
                    ));
                }
                Ok(expr)
            }
        }
    }

    /// Go requires whitespace between the operands of a command.
    fn expect_separated(&self) -> Result<(), TemplateError> {
        match self.peek() {
            Some(token) if !token.spaced => Err(syntax(
                token.offset,
                format!(
                    "unexpected {} in operand; separate arguments with spaces",
                    token.kind.describe()
                ),
            )),
            _ => Ok(()),
        }
    }

    fn parse_operand(&mut self, depth: usize) -> Result<Operand, TemplateError> {
        let Some(token) = self.tokens.get(self.pos) else {
            return Err(syntax(self.close, "missing value for command"));
        };
        self.pos += 1;
        let offset = token.offset;
        let lit = |value: Value| Ok(Operand::Expr(Expr::Lit { value, offset }, offset));
        match &token.kind {
            TokenKind::Field(name) => Ok(Operand::Expr(Expr::Field { name: name.clone() }, offset)),
            TokenKind::Str(s) => lit(Value::Str(s.clone())),
            TokenKind::Num(n) => lit(n.clone()),
            TokenKind::Bool(b) => lit(Value::Bool(*b)),
            TokenKind::Ident(name) => match Func::lookup(name) {
                Some((func, name)) => Ok(Operand::Func(func, name, offset)),
                None => Err(syntax(offset, format!("unknown function `{name}`"))),
            },
            TokenKind::LParen => {
                if depth >= MAX_NESTING {
                    return Err(syntax(
                        offset,
                        format!("parentheses nest deeper than {MAX_NESTING} levels"),
                    ));
                }
                let pipeline = self.parse_pipeline(depth + 1)?;
                match self.peek() {
                    Some(Token {
                        kind: TokenKind::RParen,
                        ..
                    }) => {
                        self.pos += 1;
                        Ok(Operand::Expr(Expr::Paren(Box::new(pipeline)), offset))
                    }
                    _ => Err(syntax(offset, "unclosed left parenthesis")),
                }
            }
            TokenKind::RParen => Err(syntax(offset, "unexpected `)`")),
            TokenKind::Pipe => Err(syntax(offset, "missing value before `|`")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A failing unwrap is a failing test.
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn render(source: &str, pairs: &[(&str, &str)]) -> Result<String, TemplateError> {
        Template::parse(source)?.render(&vars(pairs))
    }

    fn ok(source: &str, pairs: &[(&str, &str)]) -> String {
        match render(source, pairs) {
            Ok(out) => out,
            Err(err) => panic!("{source:?} failed: {err}"),
        }
    }

    fn syntax_message(source: &str) -> (usize, String) {
        match Template::parse(source) {
            Err(TemplateError::Syntax { offset, message }) => (offset, message),
            other => panic!("{source:?}: expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn plain_text_is_literal() {
        let t = Template::parse("just text, no actions { } }}").unwrap();
        assert!(t.is_literal());
        assert!(t.variables().is_empty());
        assert_eq!(t.source(), "just text, no actions { } }}");
        assert_eq!(
            t.render(&vars(&[])).unwrap(),
            "just text, no actions { } }}"
        );
        assert_eq!(ok("", &[]), "");
    }

    #[test]
    fn variable_reference() {
        assert_eq!(ok("{{.VAR}}", &[("VAR", "v")]), "v");
        assert_eq!(ok("a-{{.VAR}}-b{{.VAR}}", &[("VAR", "v")]), "a-v-bv");
        assert!(!Template::parse("{{.VAR}}").unwrap().is_literal());
    }

    #[test]
    fn whitespace_inside_actions() {
        let v = [("VAR", "v")];
        assert_eq!(ok("{{ .VAR }}", &v), "v");
        assert_eq!(ok("{{   .VAR\t}}", &v), "v");
        assert_eq!(ok("{{\n.VAR\n}}", &v), "v");
        assert_eq!(ok("{{ .VAR | lower }}", &v), "v");
        assert_eq!(ok("{{.VAR|lower}}", &v), "v");
    }

    #[test]
    fn trim_markers() {
        let v = [("A", "a"), ("B", "b")];
        assert_eq!(ok("x  \n {{- .A }}  y", &v), "xa  y");
        assert_eq!(ok("x  {{ .A -}} \n\t y", &v), "x  ay");
        assert_eq!(ok("x {{- .A -}} {{- .B -}} y", &v), "xaby");
        // `{{-3}}` is the number -3, not a trim marker.
        assert_eq!(ok("x {{-3}} y", &v), "x -3 y");
        assert_eq!(ok("x {{ 3 -}} y", &v), "x 3y");
        assert_eq!(ok("x {{- /* note */ -}} y", &v), "xy");
    }

    #[test]
    fn comments() {
        let t = Template::parse("a{{/* a comment with }} and {{ */}}b").unwrap();
        assert!(t.is_literal());
        assert_eq!(t.render(&vars(&[])).unwrap(), "ab");
        assert_eq!(syntax_message("{{/* open").1, "unclosed comment");
        assert_eq!(
            syntax_message("{{/* c */ .A }}").1,
            "comment ends before closing delimiter"
        );
        assert!(syntax_message("{{ .A /* c */ }}").1.contains("comment"));
    }

    #[test]
    fn default_both_forms() {
        assert_eq!(ok(r#"{{default "x" .VAR}}"#, &[]), "x");
        assert_eq!(ok(r#"{{default "x" .VAR}}"#, &[("VAR", "")]), "x");
        assert_eq!(ok(r#"{{default "x" .VAR}}"#, &[("VAR", "v")]), "v");
        assert_eq!(ok(r#"{{ .VAR | default "x" }}"#, &[]), "x");
        assert_eq!(ok(r#"{{ .VAR | default "x" }}"#, &[("VAR", "v")]), "v");
        assert_eq!(ok(r#"{{ default "x" (.VAR) }}"#, &[]), "x");
        assert_eq!(ok(r#"{{ default .D .VAR }}"#, &[("D", "d")]), "d");
        assert_eq!(ok("{{ default 1 0 }}", &[]), "1");
    }

    #[test]
    fn missing_variable_is_an_error() {
        assert_eq!(
            render("{{.NOPE}}", &[]),
            Err(TemplateError::MissingVariable {
                name: "NOPE".to_owned()
            })
        );
        // Only the value argument of `default` tolerates a missing variable.
        assert_eq!(
            render(r#"{{ default .D "x" }}"#, &[]),
            Err(TemplateError::MissingVariable {
                name: "D".to_owned()
            })
        );
        // A function between the variable and `default` consumes it strictly.
        assert_eq!(
            render(r#"{{ .V | lower | default "x" }}"#, &[]),
            Err(TemplateError::MissingVariable {
                name: "V".to_owned()
            })
        );
        let err = render("{{ printf \"%s\" .V }}", &[]).unwrap_err();
        assert_eq!(err.to_string(), "template variable `V` is not set");
    }

    #[test]
    fn missing_key_no_value_prints_like_go() {
        let vars: BTreeMap<String, String> = BTreeMap::from([("A".into(), "a".into())]);
        let t = Template::parse("{{.A}}-{{.B}}-{{ (.C) }}").unwrap();
        assert_eq!(
            t.render_with(&vars, MissingKey::NoValue).unwrap(),
            "a-<no value>-<no value>"
        );
        assert_eq!(t.unset_variables(&vars), ["B", "C"]);
        assert!(matches!(
            t.render(&vars),
            Err(TemplateError::MissingVariable { name }) if name == "B"
        ));
        // As in Go: a missing variable given to a function is still an error; `default` takes it.
        let t = Template::parse("{{.B | lower}}").unwrap();
        assert!(t.render_with(&vars, MissingKey::NoValue).is_err());
        let t = Template::parse("{{default \"x\" .B}}").unwrap();
        assert_eq!(t.render_with(&vars, MissingKey::NoValue).unwrap(), "x");
        assert!(t.unset_variables(&vars).is_empty());
    }

    #[test]
    fn or_and_not_tolerate_missing() {
        assert_eq!(ok("{{ or .A .B \"c\" }}", &[]), "c");
        assert_eq!(ok("{{ or .A .B \"c\" }}", &[("B", "b")]), "b");
        assert_eq!(ok("{{ and .A .B }}", &[("A", "a")]), "");
        assert_eq!(ok("{{ and .A .B }}", &[("A", "a"), ("B", "b")]), "b");
        assert_eq!(ok("{{ .A | or \"z\" }}", &[]), "z");
        assert_eq!(ok("{{ not .A }}", &[("A", "")]), "true");
        assert_eq!(ok("{{ not .A }}", &[("A", "x")]), "false");
        // `or` stops at the first truthy argument, so later ones are not evaluated.
        assert_eq!(ok("{{ or \"a\" (lower .MISSING) }}", &[]), "a");
    }

    #[test]
    fn eq_and_ne() {
        let v = [("A", "x")];
        assert_eq!(ok(r#"{{ eq .A "x" }}"#, &v), "true");
        assert_eq!(ok(r#"{{ eq .A "y" "x" }}"#, &v), "true");
        assert_eq!(ok(r#"{{ ne .A "x" }}"#, &v), "false");
        assert_eq!(ok("{{ eq 1 1 }}", &v), "true");
        match render("{{ eq .A 1 }}", &v) {
            Err(TemplateError::InvalidArgument { function, .. }) => assert_eq!(function, "eq"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn multi_stage_pipelines() {
        let v = [("NAME", "  My-App  ")];
        assert_eq!(
            ok(
                r#"{{ .NAME | trim | lower | replace "-" "_" | printf "%s:v1" }}"#,
                &v
            ),
            "my_app:v1"
        );
        assert_eq!(
            ok(r#"{{ .NAME | trim | trimPrefix "My-" | toUpper }}"#, &v),
            "APP"
        );
        assert_eq!(ok(r#"{{ "a.tar.gz" | trimSuffix ".gz" }}"#, &v), "a.tar");
        assert_eq!(ok(r#"{{ (.NAME | trim) | upper }}"#, &v), "MY-APP");
        assert_eq!(
            ok(r#"{{ printf "%s/%s" (lower "A") ("b" | upper) }}"#, &v),
            "a/B"
        );
    }

    #[test]
    fn string_literals_and_escapes() {
        assert_eq!(ok(r#"{{ "tab\there" }}"#, &[]), "tab\there");
        assert_eq!(ok(r#"{{ "q\"uote\\" }}"#, &[]), "q\"uote\\");
        assert_eq!(ok(r#"{{ "\x41\101\u00e9\U0001F600" }}"#, &[]), "AAé😀");
        assert_eq!(ok("{{ `raw \\n {{ }} \"` }}", &[]), "raw \\n {{ }} \"");
        assert_eq!(ok("{{ \"}}\" }}", &[]), "}}");
        assert_eq!(ok("{{ 'a' }}", &[]), "97");
        assert_eq!(syntax_message(r#"{{ "abc }}"#).1, "unterminated string");
        assert_eq!(syntax_message("{{ `abc }}").1, "unterminated raw string");
        assert!(syntax_message(r#"{{ "\q" }}"#).1.contains("escape"));
        assert!(syntax_message(r#"{{ "\xff" }}"#).1.contains("UTF-8"));
        assert!(syntax_message(r#"{{ "\ud800" }}"#).1.contains("code point"));
    }

    #[test]
    fn numbers_and_booleans() {
        assert_eq!(ok("{{ 42 }}", &[]), "42");
        assert_eq!(ok("{{ -7 }}", &[]), "-7");
        assert_eq!(ok("{{ 0x1F }}", &[]), "31");
        assert_eq!(ok("{{ 010 }}", &[]), "8");
        assert_eq!(ok("{{ 1_000 }}", &[]), "1000");
        assert_eq!(ok("{{ 1.5 }}", &[]), "1.5");
        assert_eq!(ok("{{ 2.0 }}", &[]), "2");
        assert_eq!(ok("{{ 1e6 }}", &[]), "1e+06");
        assert_eq!(ok("{{ 1.5e-7 }}", &[]), "1.5e-07");
        assert_eq!(ok("{{ true }}", &[]), "true");
        assert_eq!(ok(r#"{{ printf "%d-%v" 5 false }}"#, &[]), "5-false");
        assert!(syntax_message("{{ 12ab }}").1.contains("bad number"));
        assert!(
            syntax_message("{{ 99999999999999999999 }}")
                .1
                .contains("range")
        );
    }

    #[test]
    fn quote_and_printf() {
        let v = [("A", "he said \"hi\"\n")];
        assert_eq!(ok("{{ quote .A }}", &v), r#""he said \"hi\"\n""#);
        assert_eq!(ok("{{ .A | quote }}", &v), r#""he said \"hi\"\n""#);
        assert_eq!(ok(r#"{{ quote "a" 1 }}"#, &v), r#""a" "1""#);
        assert_eq!(ok(r#"{{ printf "%q" .A }}"#, &v), r#""he said \"hi\"\n""#);
        assert_eq!(ok(r#"{{ printf "%s=%v" "k" "v" }}"#, &v), "k=v");
        assert_eq!(ok(r#"{{ printf "100%%" }}"#, &v), "100%");
        assert_eq!(ok(r#"{{ printf "%q" 65 }}"#, &v), "'A'");
        assert_eq!(ok(r#"{{ printf "%s %s" "a" }}"#, &v), "a %!s(MISSING)");
        assert_eq!(ok(r#"{{ printf "%s" "a" 1 }}"#, &v), "a%!(EXTRA int=1)");
        assert_eq!(ok(r#"{{ printf "%d" "a" }}"#, &v), "%!d(string=a)");
        assert!(syntax_message(r#"{{ printf "%x" 1 }}"#).1.contains("%x"));
        // A format that only exists at render time is checked then.
        assert!(matches!(
            render("{{ printf .F 1 }}", &[("F", "%05d")]),
            Err(TemplateError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn env_function_reads_vars() {
        assert_eq!(ok(r#"{{ env "HOME" }}"#, &[("HOME", "/root")]), "/root");
        assert_eq!(ok(r#"{{ env "UNSET" }}"#, &[]), "");
        let t = Template::parse(r#"{{ env "HOME" }}{{ .X }}"#).unwrap();
        assert_eq!(t.variables(), ["HOME", "X"]);
    }

    #[test]
    fn unknown_function_at_parse_time() {
        let (offset, message) = syntax_message("ab{{ foo .X }}");
        assert_eq!(message, "unknown function `foo`");
        assert_eq!(offset, 5);
        assert!(syntax_message("{{ .X | bar }}").1.contains("`bar`"));
    }

    #[test]
    fn arity_checked_at_parse_time() {
        assert_eq!(
            syntax_message(r#"{{ default "x" }}"#).1,
            "function `default` takes 2 arguments, got 1"
        );
        assert_eq!(
            syntax_message(r#"{{ .A | default "x" "y" }}"#).1,
            "function `default` takes 2 arguments, got 3"
        );
        assert_eq!(
            syntax_message("{{ toLower }}").1,
            "function `toLower` takes 1 argument, got 0"
        );
        assert!(syntax_message("{{ eq .A }}").1.contains("at least 2"));
    }

    #[test]
    fn unclosed_and_malformed_actions() {
        assert_eq!(
            syntax_message("abc {{ .A "),
            (4, "unclosed action".to_owned())
        );
        assert_eq!(syntax_message("{{").1, "unclosed action");
        assert_eq!(syntax_message("{{ }}").1, "missing value for command");
        assert_eq!(syntax_message("{{ .A | }}").1, "missing value for command");
        assert!(
            syntax_message("{{ (.A }}")
                .1
                .contains("unclosed left parenthesis")
        );
        assert!(syntax_message("{{ .A) }}").1.contains("`)`"));
        assert!(
            syntax_message(r#"{{ .A "x" }}"#)
                .1
                .contains("only a function")
        );
        assert!(syntax_message(r#"{{ "x" | .A }}"#).1.contains("piped"));
        assert!(syntax_message(r#"{{ lower"x" }}"#).1.contains("spaces"));
        assert!(syntax_message("{{ . }}").1.contains("`.`"));
        assert!(syntax_message("{{ .A.B }}").1.contains("nested"));
        assert!(syntax_message("{{ $x := 1 }}").1.contains("variables"));
        assert!(syntax_message("{{ nil }}").1.contains("nil"));
    }

    #[test]
    fn control_structures_are_unsupported() {
        for (source, keyword) in [
            ("{{ if .A }}x{{ end }}", "if"),
            ("{{range .A}}{{end}}", "range"),
            ("a {{- with .A }}", "with"),
            ("{{ end }}", "end"),
            ("{{ template \"x\" }}", "template"),
        ] {
            match Template::parse(source) {
                Err(TemplateError::UnsupportedAction { action, .. }) => assert_eq!(action, keyword),
                other => panic!("{source:?}: {other:?}"),
            }
        }
        let err = Template::parse("{{ if .A }}").unwrap_err();
        assert!(err.to_string().contains("`if`"));
    }

    #[test]
    fn nesting_is_capped() {
        let ok_depth = format!("{}.A{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert_eq!(ok(&format!("{{{{ {ok_depth} }}}}"), &[("A", "a")]), "a");
        let too_deep = format!(
            "{{{{ {}.A{} }}}}",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        );
        assert!(syntax_message(&too_deep).1.contains("deeper"));
        let huge = format!("{{{{ {} }}}}", "(".repeat(100_000));
        assert!(Template::parse(&huge).is_err());
    }

    #[test]
    fn variables_in_order_without_duplicates() {
        let t = Template::parse(
            r#"{{.IMAGE_REPO}}/{{ .B | default .C }}{{ or (.A) .IMAGE_REPO }}{{/* .Z */}}"#,
        )
        .unwrap();
        assert_eq!(t.variables(), ["IMAGE_REPO", "B", "C", "A"]);
        assert!(Template::parse("text").unwrap().variables().is_empty());
    }

    #[test]
    fn unicode_text_and_names() {
        let v = [("NAME", "wörld"), ("ÜBER", "ü")];
        assert_eq!(
            ok("héllo {{ .NAME }} — ✓{{.ÜBER}}日本", &v),
            "héllo wörld — ✓ü日本"
        );
        assert_eq!(ok("{{ .NAME | upper }}", &v), "WÖRLD");
        assert_eq!(syntax_message("日本 {{ .A ").0, "日本 ".len());
        assert!(syntax_message("{{ é· }}").1.contains('·'));
    }

    #[test]
    fn layered_vars_first_hit_wins() {
        let first = vars(&[("A", "1")]);
        let mut second: HashMap<String, String> = HashMap::new();
        second.insert("A".to_owned(), "2".to_owned());
        second.insert("B".to_owned(), "3".to_owned());
        let layered = LayeredVars(vec![&first, &second]);
        let t = Template::parse("{{.A}}{{.B}}").unwrap();
        assert_eq!(t.render(&layered).unwrap(), "13");
        assert!(format!("{layered:?}").contains("layers: 2"));
    }

    #[test]
    fn from_str_display_and_error_messages() {
        let t: Template = "x{{ .A }}".parse().unwrap();
        assert_eq!(t.to_string(), "x{{ .A }}");
        assert_eq!(t, Template::parse("x{{ .A }}").unwrap());
        assert_eq!(
            Template::parse("{{ foo }}").unwrap_err().to_string(),
            "template syntax error at byte 3: unknown function `foo`"
        );
    }

    fn fragments() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "{{", "}}", "{{- ", " -}}", ".A", ".B", ".", "|", "default", "or", "and", "not", "eq",
            "printf", "quote", "lower", "replace", "env", "\"x\"", "\"%s\"", "\"%d\"", "\"\\", "`",
            "'", "(", ")", " ", "\n", "-", "1", "0x", "1e", "é", "日", "/*", "*/", "$", "if",
            "end", "true", "\\u", "%",
        ]);
        prop::collection::vec(pieces, 0..24).prop_map(|parts| parts.concat())
    }

    fn check_no_panic(source: &str) {
        let map = vars(&[("A", "a"), ("B", "")]);
        if let Ok(t) = Template::parse(source) {
            let _ = t.render(&map);
            let _ = t.variables();
            let _ = t.is_literal();
        }
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(source in any::<String>()) {
            check_no_panic(&source);
        }

        #[test]
        fn fragment_soup_never_panics(source in fragments()) {
            check_no_panic(&source);
        }

        #[test]
        fn literal_text_round_trips(text in "[^{]*") {
            let t = Template::parse(&text).unwrap();
            prop_assert!(t.is_literal());
            prop_assert_eq!(t.render(&vars(&[])).unwrap(), text);
        }
    }
}

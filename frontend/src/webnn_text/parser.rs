//! A recursive-descent parser for the grammar in `shared/formats/webnn-text.md`.

use kiln_ir::Number;

use super::ast::*;
use super::lexer::{tokenize, Tok, Token};
use super::ParseError;

/// How deeply arrays may nest inside one another. Deeper input is an error,
/// not a stack overflow.
pub const MAX_NESTING: usize = 64;

/// Words that the grammar reads as values, so they cannot name an operand.
pub(super) const RESERVED: [&str; 5] = ["true", "false", "null", "Infinity", "NaN"];

const BLOCKS: [&str; 4] = ["inputs", "consts", "nodes", "outputs"];

/// Parses a whole `.webnn` file. The first syntax error ends the parse and
/// is returned with its 1-based line and column.
pub fn parse(src: &str) -> Result<Document, ParseError> {
    let mut p = Parser { tokens: tokenize(src)?, i: 0 };
    p.document()
}

struct Parser {
    tokens: Vec<Token>,
    i: usize,
}

type R<T> = Result<T, ParseError>;

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.i.min(self.tokens.len() - 1)]
    }

    fn peek2(&self) -> &Tok {
        &self.tokens[(self.i + 1).min(self.tokens.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.tokens.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn fail<T>(&self, expected: &str) -> R<T> {
        let t = self.peek();
        Err(ParseError::new(t.pos, format!("expected {expected}, found {}", t.tok.describe())))
    }

    fn at_punct(&self, c: char) -> bool {
        self.peek().tok == Tok::Punct(c)
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let at = self.at_punct(c);
        if at {
            self.next();
        }
        at
    }

    fn expect_punct(&mut self, c: char, context: &str) -> R<Pos> {
        if self.at_punct(c) {
            Ok(self.next().pos)
        } else {
            self.fail(&format!("`{c}` {context}"))
        }
    }

    /// An identifier that names an operand (so not a reserved word).
    fn name(&mut self, what: &str) -> R<Ident> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Ident(name) if RESERVED.contains(&name.as_str()) => {
                Err(ParseError::new(t.pos, format!("`{name}` is a reserved word and cannot name an operand")))
            }
            Tok::Ident(name) => {
                self.next();
                Ok(Ident { name, pos: t.pos })
            }
            _ => self.fail(what),
        }
    }

    fn document(&mut self) -> R<Document> {
        match &self.peek().tok {
            Tok::Ident(w) if w == "webnn_graph" => {
                self.next();
            }
            _ => return self.fail("the header `webnn_graph \"name\" v1 {`"),
        }
        let name = match self.peek().tok.clone() {
            Tok::Str(s) => {
                self.next();
                s
            }
            _ => return self.fail("the graph name (a string) after `webnn_graph`"),
        };
        let version = self.version()?;
        let mut doc = Document::new(name);
        doc.version = version;
        if let Tok::Annotation(a) = self.peek().tok.clone() {
            if a != "quantized" {
                return Err(ParseError::new(self.peek().pos, format!("unknown header annotation `@{a}` (only @quantized is allowed)")));
            }
            self.next();
            doc.quantized = true;
        }
        self.expect_punct('{', "to open the graph")?;
        let mut seen: [Option<Pos>; 4] = [None; 4];
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::Punct('}') => {
                    self.next();
                    break;
                }
                Tok::Ident(word) if BLOCKS.contains(&word.as_str()) => {
                    let k = BLOCKS.iter().position(|b| b == word).unwrap_or_default();
                    if let Some(first) = seen[k] {
                        return Err(ParseError::new(t.pos, format!("duplicate `{word}` block (the first one is at {first})")));
                    }
                    seen[k] = Some(t.pos);
                    self.next();
                    self.expect_punct('{', &format!("after `{word}`"))?;
                    match k {
                        0 => self.inputs(&mut doc.inputs)?,
                        1 => self.consts(&mut doc.consts)?,
                        2 => self.nodes(&mut doc.nodes)?,
                        _ => self.outputs(&mut doc.outputs)?,
                    }
                }
                Tok::Eof => return self.fail("`}` to close the graph"),
                _ => return self.fail("a block (`inputs`, `consts`, `nodes` or `outputs`) or `}`"),
            }
        }
        if self.peek().tok != Tok::Eof {
            return self.fail("end of file after the graph's closing `}`");
        }
        Ok(doc)
    }

    /// `v1`, lexed as one identifier, or `v 1`.
    fn version(&mut self) -> R<u32> {
        let t = self.peek().clone();
        let digits = match &t.tok {
            Tok::Ident(w) if w == "v" => {
                self.next();
                match self.peek().tok {
                    Tok::Int(i) => {
                        let pos = self.next().pos;
                        return u32::try_from(i).map_err(|_| ParseError::new(pos, format!("version {i} is out of range")));
                    }
                    _ => return self.fail("a version number after `v`"),
                }
            }
            Tok::Ident(w) if w.len() > 1 && w.starts_with('v') && w[1..].bytes().all(|b| b.is_ascii_digit()) => w[1..].to_string(),
            _ => return self.fail("the version `v1` after the graph name"),
        };
        self.next();
        digits.parse().map_err(|_| ParseError::new(t.pos, format!("version {digits} is out of range")))
    }

    fn inputs(&mut self, out: &mut Vec<InputDecl>) -> R<()> {
        while !self.eat_punct('}') {
            let name = self.name("an input declaration `name: f32[...];` or `}`")?;
            self.expect_punct(':', &format!("after input name `{}`", name.name))?;
            let ty = self.tensor_type()?;
            self.expect_punct(';', "after input declaration")?;
            out.push(InputDecl { name, ty });
        }
        Ok(())
    }

    fn consts(&mut self, out: &mut Vec<ConstDecl>) -> R<()> {
        while !self.eat_punct('}') {
            let name = self.name("a constant declaration `name: f32[...] @weights(\"key\");` or `}`")?;
            self.expect_punct(':', &format!("after constant name `{}`", name.name))?;
            let ty = self.tensor_type()?;
            let mut annotations = Vec::new();
            while let Tok::Annotation(a) = self.peek().tok.clone() {
                let pos = self.next().pos;
                self.expect_punct('(', &format!("after `@{a}`"))?;
                annotations.push(match a.as_str() {
                    "weights" => match self.peek().tok.clone() {
                        Tok::Str(key) => {
                            self.next();
                            Annotation::Weights(key)
                        }
                        _ => return self.fail("a string key in `@weights(...)`"),
                    },
                    "scalar" => Annotation::Scalar(self.number("a number in `@scalar(...)`")?),
                    _ => return Err(ParseError::new(pos, format!("unknown annotation `@{a}` (expected @weights or @scalar)"))),
                });
                self.expect_punct(')', &format!("to close `@{a}(...)`"))?;
            }
            if !self.at_punct(';') {
                return self.fail("`;` or an annotation after constant declaration");
            }
            self.next();
            out.push(ConstDecl { name, ty, annotations });
        }
        Ok(())
    }

    fn number(&mut self, expected: &str) -> R<Number> {
        let n = match &self.peek().tok {
            Tok::Int(i) => Number::Int(*i),
            Tok::Float(x) => Number::Float(*x),
            Tok::Ident(w) if w == "Infinity" => Number::Float(f64::INFINITY),
            Tok::Ident(w) if w == "NaN" => Number::Float(f64::NAN),
            _ => return self.fail(expected),
        };
        self.next();
        Ok(n)
    }

    fn tensor_type(&mut self) -> R<TensorType> {
        let t = self.peek().clone();
        let dtype = match &t.tok {
            Tok::Ident(w) => DType::from_name(w).ok_or_else(|| {
                ParseError::new(t.pos, format!("unknown data type `{w}` (expected f32, f16, i4, u4, i32, u32, i64, u64, i8 or u8)"))
            })?,
            _ => return self.fail("a data type such as `f32`"),
        };
        self.next();
        self.expect_punct('[', "to start the shape")?;
        let mut shape = Vec::new();
        if !self.eat_punct(']') {
            loop {
                let t = self.peek().clone();
                match t.tok {
                    Tok::Int(i) if i < 0 => return Err(ParseError::new(t.pos, format!("dimension {i} is negative"))),
                    Tok::Int(i) => shape.push(
                        u32::try_from(i)
                            .map_err(|_| ParseError::new(t.pos, format!("dimension {i} does not fit in 32 bits")))?,
                    ),
                    _ => return self.fail("a dimension (a non-negative integer)"),
                }
                self.next();
                if self.eat_punct(']') {
                    break;
                }
                self.expect_punct(',', "or `]` in the shape")?;
            }
        }
        Ok(TensorType { dtype, shape })
    }

    fn nodes(&mut self, out: &mut Vec<Stmt>) -> R<()> {
        while !self.eat_punct('}') {
            let pos = self.peek().pos;
            let (targets, multi) = if self.eat_punct('[') {
                let mut targets = vec![self.name("a name to bind")?];
                while self.eat_punct(',') {
                    targets.push(self.name("a name to bind")?);
                }
                self.expect_punct(']', "or `,` in the list of names")?;
                (targets, true)
            } else {
                (vec![self.name("a statement `name = op(...);` or `}`")?], false)
            };
            let what = if multi { "after `[...]`".to_string() } else { format!("after `{}`", targets[0].name) };
            self.expect_punct('=', &what)?;
            let expr = self.expr()?;
            self.expect_punct(';', "after statement")?;
            out.push(Stmt { targets, multi, expr, pos });
        }
        Ok(())
    }

    fn expr(&mut self) -> R<Expr> {
        if matches!(self.peek().tok, Tok::Ident(_)) && *self.peek2() == Tok::Punct('(') {
            let op = self.name("an operator name")?;
            self.next();
            let mut args = Vec::new();
            if !self.eat_punct(')') {
                loop {
                    let name = if matches!(self.peek().tok, Tok::Ident(_)) && *self.peek2() == Tok::Punct('=') {
                        let n = self.name("an option name")?;
                        self.next();
                        Some(n)
                    } else {
                        None
                    };
                    args.push(Arg { name, value: self.value(0)? });
                    if self.eat_punct(')') {
                        break;
                    }
                    self.expect_punct(',', &format!("or `)` in the arguments of `{}`", op.name))?;
                }
            }
            Ok(Expr::Call(Call { op, args }))
        } else {
            Ok(Expr::Value(self.value(0)?))
        }
    }

    fn value(&mut self, depth: usize) -> R<Value> {
        let t = self.peek().clone();
        let v = match t.tok {
            Tok::Ident(w) => match w.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                "Infinity" => Value::Float(f64::INFINITY),
                "NaN" => Value::Float(f64::NAN),
                _ => Value::Ident(Ident { name: w, pos: t.pos }),
            },
            Tok::Int(i) => Value::Int(i),
            Tok::Float(x) => Value::Float(x),
            Tok::Str(s) => Value::Str(s),
            Tok::Punct('[') => {
                if depth >= MAX_NESTING {
                    return Err(ParseError::new(t.pos, format!("arrays nest deeper than {MAX_NESTING} levels")));
                }
                self.next();
                let mut items = Vec::new();
                if !self.eat_punct(']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        if self.eat_punct(']') {
                            break;
                        }
                        self.expect_punct(',', "or `]` in the array")?;
                    }
                }
                return Ok(Value::Array(items));
            }
            _ => return self.fail("a value (a name, number, string, array, true, false or null)"),
        };
        self.next();
        Ok(v)
    }

    fn outputs(&mut self, out: &mut Vec<Ident>) -> R<()> {
        while !self.eat_punct('}') {
            out.push(self.name("an output name or `}`")?);
            while self.eat_punct(',') {
                out.push(self.name("an output name after `,`")?);
            }
            self.eat_punct(';');
        }
        Ok(())
    }
}

//! The elementwise expressions of `[arrays.NAME] expr = "..."`, in NumPy's notation: arrays by
//! name, numbers, `+ - * / // % **`, comparisons, `& | ~`, parentheses, and the functions
//! `sqrt exp log sin cos tan abs floor ceil isnan minimum maximum where`. Python's precedence
//! (`-x ** 2` is `-(x ** 2)`; `**` groups to the right). Written by hand: a precedence-climbing
//! parser of a dozen operators needs no grammar crate.

use crate::collections::array::Array;
use crate::error::{Error, Result};
use shoal_protocol::{BinaryOp, Scalar, UnaryOp};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Ast {
    Name(String),
    Number(Scalar),
    Unary(UnaryOp, Box<Ast>),
    Binary(BinaryOp, Box<Ast>, Box<Ast>),
    Call(String, Vec<Ast>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Number(Scalar),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

const OPERATORS: [&str; 17] =
    ["**", "//", "<=", ">=", "==", "!=", "+", "-", "*", "/", "%", "<", ">", "&", "|", "~", "^"];

fn tokens(text: &str) -> Result<Vec<Token>> {
    let bad = |m: String| Error::Invalid(format!("expression {text:?}: {m}"));
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' || c == ',' {
            out.push(match c {
                '(' => Token::Open,
                ')' => Token::Close,
                _ => Token::Comma,
            });
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '_'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().filter(|&&c| c != '_').collect();
            let number = if word.contains(['.', 'e', 'E']) {
                word.parse::<f64>().map(Scalar::float).map_err(|_| bad(format!("{word} is not a number")))?
            } else {
                Scalar::Int(word.parse().map_err(|_| bad(format!("{word} is not a number")))?)
            };
            out.push(Token::Number(number));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "True" => Token::Number(Scalar::Bool(true)),
                "False" => Token::Number(Scalar::Bool(false)),
                "nan" | "inf" => Token::Number(Scalar::Float(word)),
                _ => Token::Name(word),
            });
        } else {
            let rest: String = chars[i..].iter().take(2).collect();
            let op = OPERATORS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| bad(format!("unexpected {c:?}")))?;
            if *op == "^" {
                return Err(bad("^ is not a power; write **".into()));
            }
            out.push(Token::Op(op));
            i += op.len();
        }
    }
    Ok(out)
}

/// Parses `text`.
pub fn parse(text: &str) -> Result<Ast> {
    let tokens = tokens(text)?;
    let mut p = Parser { tokens, at: 0, text };
    let ast = p.expr(0)?;
    if p.at != p.tokens.len() {
        return Err(p.error("unexpected text after the expression"));
    }
    Ok(ast)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    text: &'a str,
}

/// Binary operators: (symbol, precedence, operation). Higher binds tighter.
const BINARY: [(&str, u8, BinaryOp); 15] = [
    ("|", 1, BinaryOp::Or),
    ("&", 2, BinaryOp::And),
    ("<", 3, BinaryOp::Less),
    ("<=", 3, BinaryOp::LessEqual),
    (">", 3, BinaryOp::Greater),
    (">=", 3, BinaryOp::GreaterEqual),
    ("==", 3, BinaryOp::Equal),
    ("!=", 3, BinaryOp::NotEqual),
    ("+", 4, BinaryOp::Add),
    ("-", 4, BinaryOp::Subtract),
    ("*", 5, BinaryOp::Multiply),
    ("/", 5, BinaryOp::Divide),
    ("//", 5, BinaryOp::FloorDivide),
    ("%", 5, BinaryOp::Remainder),
    ("**", 7, BinaryOp::Power),
];

impl Parser<'_> {
    fn error(&self, m: &str) -> Error {
        Error::Invalid(format!("expression {:?}: {m}", self.text))
    }

    fn expr(&mut self, min: u8) -> Result<Ast> {
        let mut left = self.unary()?;
        while let Some(Token::Op(op)) = self.tokens.get(self.at) {
            let Some(&(_, prec, bin)) = BINARY.iter().find(|(s, _, _)| s == op) else { break };
            if prec < min {
                break;
            }
            self.at += 1;
            // `**` groups to the right; the rest to the left.
            let right = if bin == BinaryOp::Power { self.unary_or_power()? } else { self.expr(prec + 1)? };
            left = Ast::Binary(bin, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// The right operand of `**`: a unary expression that may itself be raised.
    fn unary_or_power(&mut self) -> Result<Ast> {
        let base = self.unary()?;
        if let Some(Token::Op("**")) = self.tokens.get(self.at) {
            self.at += 1;
            let exponent = self.unary_or_power()?;
            return Ok(Ast::Binary(BinaryOp::Power, Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    /// Unary `-`, `+`, `~` bind looser than `**`.
    fn unary(&mut self) -> Result<Ast> {
        match self.tokens.get(self.at) {
            Some(Token::Op(op @ ("-" | "+" | "~"))) => {
                let op = *op;
                self.at += 1;
                let operand = self.expr(6)?;
                Ok(match op {
                    "-" => match operand {
                        Ast::Number(Scalar::Int(i)) => Ast::Number(Scalar::Int(-i)),
                        Ast::Number(Scalar::Float(f)) => {
                            Ast::Number(Scalar::float(-f.parse::<f64>().unwrap_or(f64::NAN)))
                        }
                        other => Ast::Unary(UnaryOp::Negative, Box::new(other)),
                    },
                    "~" => Ast::Unary(UnaryOp::Not, Box::new(operand)),
                    _ => operand,
                })
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<Ast> {
        let token =
            self.tokens.get(self.at).cloned().ok_or_else(|| self.error("the expression ends early"))?;
        self.at += 1;
        match token {
            Token::Number(n) => Ok(Ast::Number(n)),
            Token::Open => {
                let inner = self.expr(0)?;
                self.expect(Token::Close, "a closing parenthesis")?;
                Ok(inner)
            }
            Token::Name(name) if self.tokens.get(self.at) == Some(&Token::Open) => {
                self.at += 1;
                let mut args = Vec::new();
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    loop {
                        args.push(self.expr(0)?);
                        if self.tokens.get(self.at) == Some(&Token::Comma) {
                            self.at += 1;
                            continue;
                        }
                        break;
                    }
                }
                self.expect(Token::Close, "a closing parenthesis")?;
                Ok(Ast::Call(name, args))
            }
            Token::Name(name) => Ok(Ast::Name(name)),
            other => Err(self.error(&format!("unexpected {other:?}"))),
        }
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<()> {
        if self.tokens.get(self.at) == Some(&token) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {what}")))
        }
    }
}

/// The names of arrays the expression reads.
pub fn names(ast: &Ast, out: &mut Vec<String>) {
    match ast {
        Ast::Name(n) if !out.contains(n) => out.push(n.clone()),
        Ast::Unary(_, a) => names(a, out),
        Ast::Binary(_, a, b) => {
            names(a, out);
            names(b, out);
        }
        Ast::Call(_, args) => args.iter().for_each(|a| names(a, out)),
        _ => {}
    }
}

/// A value while evaluating: an array or a number.
enum Value {
    Array(Array),
    Number(Scalar),
}

/// Evaluates `ast` with the arrays `lookup` gives by name.
pub fn evaluate(ast: &Ast, lookup: &dyn Fn(&str) -> Result<Array>) -> Result<Array> {
    match eval(ast, lookup)? {
        Value::Array(a) => Ok(a),
        Value::Number(_) => Err(Error::Invalid("an array expression must read at least one array".into())),
    }
}

fn eval(ast: &Ast, lookup: &dyn Fn(&str) -> Result<Array>) -> Result<Value> {
    Ok(match ast {
        Ast::Name(n) => Value::Array(lookup(n)?),
        Ast::Number(s) => Value::Number(s.clone()),
        Ast::Unary(op, a) => Value::Array(array_of(eval(a, lookup)?, "a unary operator")?.unary(*op)?),
        Ast::Binary(op, a, b) => match (eval(a, lookup)?, eval(b, lookup)?) {
            (Value::Array(x), Value::Array(y)) => Value::Array(x.binary_op(*op, (&y).into())?),
            (Value::Array(x), Value::Number(s)) => {
                Value::Array(x.binary_op(*op, crate::collections::array::Operand::Scalar(s))?)
            }
            (Value::Number(s), Value::Array(y)) => Value::Array(y.rbinary(*op, s)?),
            (Value::Number(_), Value::Number(_)) => {
                return Err(Error::Invalid("an operation of two numbers: write its result instead".into()));
            }
        },
        Ast::Call(f, args) => {
            let values = args.iter().map(|a| eval(a, lookup)).collect::<Result<Vec<_>>>()?;
            Value::Array(call(f, values)?)
        }
    })
}

fn array_of(v: Value, what: &str) -> Result<Array> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Number(_) => Err(Error::Invalid(format!("{what} of a number: write its result instead"))),
    }
}

fn call(f: &str, mut args: Vec<Value>) -> Result<Array> {
    let unary = match f {
        "sqrt" => Some(UnaryOp::Sqrt),
        "exp" => Some(UnaryOp::Exp),
        "log" => Some(UnaryOp::Log),
        "sin" => Some(UnaryOp::Sin),
        "cos" => Some(UnaryOp::Cos),
        "tan" => Some(UnaryOp::Tan),
        "abs" | "absolute" => Some(UnaryOp::Absolute),
        "floor" => Some(UnaryOp::Floor),
        "ceil" => Some(UnaryOp::Ceil),
        "isnan" => Some(UnaryOp::Isnan),
        _ => None,
    };
    let arity = |n: usize| -> Result<()> {
        if args.len() == n {
            Ok(())
        } else {
            Err(Error::Invalid(format!("{f}() takes {n} arguments, not {}", args.len())))
        }
    };
    if let Some(op) = unary {
        arity(1)?;
        return array_of(args.remove(0), &format!("{f}()"))?.unary(op);
    }
    fn operand(v: &Value) -> crate::collections::array::Operand<'_> {
        match v {
            Value::Array(a) => crate::collections::array::Operand::Array(a),
            Value::Number(s) => crate::collections::array::Operand::Scalar(s.clone()),
        }
    }
    match f {
        "minimum" | "maximum" => {
            arity(2)?;
            let op = if f == "minimum" { BinaryOp::Minimum } else { BinaryOp::Maximum };
            match (&args[0], &args[1]) {
                (Value::Array(a), other) | (other, Value::Array(a)) => a.binary_op(op, operand(other)),
                _ => Err(Error::Invalid(format!("{f}() of two numbers: write its result instead"))),
            }
        }
        "where" => {
            arity(3)?;
            let Value::Array(condition) = &args[0] else {
                return Err(Error::Invalid("where(): the condition must be an array".into()));
            };
            condition.where_(operand(&args[1]), operand(&args[2]))
        }
        other => Err(Error::Invalid(format!(
            "unknown function {other}() (sqrt, exp, log, sin, cos, tan, abs, floor, ceil, isnan, minimum, maximum, where)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Box<Ast> {
        Box::new(Ast::Name(n.into()))
    }

    #[test]
    fn pythons_precedence() -> Result<()> {
        // -a ** 2 is -(a ** 2); a ** b ** c is a ** (b ** c); * before +; comparisons before &.
        assert_eq!(
            parse("-a ** 2")?,
            Ast::Unary(
                UnaryOp::Negative,
                Box::new(Ast::Binary(BinaryOp::Power, name("a"), Box::new(Ast::Number(Scalar::Int(2)))))
            )
        );
        assert_eq!(
            parse("a ** b ** c")?,
            Ast::Binary(
                BinaryOp::Power,
                name("a"),
                Box::new(Ast::Binary(BinaryOp::Power, name("b"), name("c")))
            )
        );
        assert_eq!(
            parse("a + b * c")?,
            Ast::Binary(
                BinaryOp::Add,
                name("a"),
                Box::new(Ast::Binary(BinaryOp::Multiply, name("b"), name("c")))
            )
        );
        assert_eq!(
            parse("(a > 0) & (b <= 1.5e-3)")?,
            Ast::Binary(
                BinaryOp::And,
                Box::new(Ast::Binary(BinaryOp::Greater, name("a"), Box::new(Ast::Number(Scalar::Int(0))))),
                Box::new(Ast::Binary(
                    BinaryOp::LessEqual,
                    name("b"),
                    Box::new(Ast::Number(Scalar::float(1.5e-3)))
                )),
            )
        );
        assert_eq!(
            parse("a - b - c")?,
            Ast::Binary(
                BinaryOp::Subtract,
                Box::new(Ast::Binary(BinaryOp::Subtract, name("a"), name("b"))),
                name("c")
            )
        );
        assert!(parse("where(a > 0, a, 0)").is_ok());
        assert!(parse("a ^ 2").unwrap_err().to_string().contains("write **"));
        assert!(parse("(a + b").unwrap_err().to_string().contains("closing parenthesis"));
        assert!(parse("a b").unwrap_err().to_string().contains("after the expression"));
        let mut seen = Vec::new();
        names(&parse("sqrt(a) + where(b, a, c)")?, &mut seen);
        assert_eq!(seen, ["a", "b", "c"]);
        Ok(())
    }
}

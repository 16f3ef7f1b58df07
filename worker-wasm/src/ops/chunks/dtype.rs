//! NumPy's type rules, shared with the coordinator (which types every expression at plan time
//! with these same functions): promotion between arrays (NEP 50), "weak" Python scalars, and
//! the type each operation returns.
//!
//! Written by hand: no crate implements NumPy's promotion table. Differences from NumPy, all
//! because shoal has no float16: a float function (`sqrt`, `exp`, ...) of an 8-bit integer gives
//! float32, where NumPy gives float16.

use shoal_protocol::{BinaryOp, DType, Scalar, UnaryOp};

/// The type an operand has in an expression: an array's, or a Python scalar's, which takes the
/// array's type where it fits its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Array(DType),
    /// A Python bool, int or float.
    Weak(WeakKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WeakKind {
    Bool,
    Int,
    Float,
}

impl Operand {
    pub fn of_scalar(value: &Scalar) -> Operand {
        Operand::Weak(match value {
            Scalar::Bool(_) => WeakKind::Bool,
            Scalar::Int(_) => WeakKind::Int,
            Scalar::Float(_) => WeakKind::Float,
        })
    }

    /// The concrete type: a lone scalar's default (bool, int64, float64).
    pub fn dtype(self) -> DType {
        match self {
            Operand::Array(d) => d,
            Operand::Weak(WeakKind::Bool) => DType::Bool,
            Operand::Weak(WeakKind::Int) => DType::Int64,
            Operand::Weak(WeakKind::Float) => DType::Float64,
        }
    }
}

/// NumPy's `result_type` of two array types.
pub fn promote(a: DType, b: DType) -> DType {
    use DType::*;
    if a == b {
        return a;
    }
    if a == Bool {
        return b;
    }
    if b == Bool {
        return a;
    }
    match (a.is_float(), b.is_float()) {
        (true, true) => return if a.size() >= b.size() { a } else { b },
        (true, false) => return float_with_int(a, b),
        (false, true) => return float_with_int(b, a),
        (false, false) => {}
    }
    if a.is_signed() == b.is_signed() {
        return if a.size() >= b.size() { a } else { b };
    }
    let (signed, unsigned) = if a.is_signed() { (a, b) } else { (b, a) };
    if signed.size() > unsigned.size() {
        return signed;
    }
    match unsigned.size() {
        1 => Int16,
        2 => Int32,
        4 => Int64,
        _ => Float64,
    }
}

/// A float type with an integer type: float32 holds integers of up to 16 bits exactly.
fn float_with_int(float: DType, int: DType) -> DType {
    if float == DType::Float32 && int.size() <= 2 { DType::Float32 } else { DType::Float64 }
}

/// The type of `a op b` for arithmetic (before the operation's own rule, [`binary`]).
pub fn promote_operands(a: Operand, b: Operand) -> DType {
    match (a, b) {
        (Operand::Array(x), Operand::Array(y)) => promote(x, y),
        (Operand::Array(x), Operand::Weak(k)) | (Operand::Weak(k), Operand::Array(x)) => weak(x, k),
        (Operand::Weak(x), Operand::Weak(y)) => Operand::Weak(x.max(y)).dtype(),
    }
}

/// An array type with a Python scalar of kind `k` (NEP 50): the array's type unless the scalar
/// is of a higher kind.
fn weak(array: DType, k: WeakKind) -> DType {
    match k {
        WeakKind::Bool => array,
        WeakKind::Int if array.is_bool() => DType::Int64,
        WeakKind::Int => array,
        WeakKind::Float if array.is_float() => array,
        WeakKind::Float => DType::Float64,
    }
}

/// The float type a float function of `d` returns.
pub fn float_of(d: DType) -> DType {
    match d {
        DType::Float32 | DType::Float64 => d,
        DType::Bool | DType::Int8 | DType::Uint8 | DType::Int16 | DType::Uint16 => DType::Float32,
        _ => DType::Float64,
    }
}

/// The type `op` returns on operands of these types, or why it cannot apply.
pub fn binary(op: BinaryOp, a: Operand, b: Operand) -> Result<DType, String> {
    use BinaryOp::*;
    let promoted = promote_operands(a, b);
    Ok(match op {
        Equal | NotEqual | Less | LessEqual | Greater | GreaterEqual => DType::Bool,
        And | Or => {
            if a.dtype() != DType::Bool || b.dtype() != DType::Bool {
                return Err(format!(
                    "{} needs boolean operands, not {} and {}",
                    binary_symbol(op),
                    a.dtype(),
                    b.dtype()
                ));
            }
            DType::Bool
        }
        Divide if promoted.is_float() => promoted,
        Divide => DType::Float64,
        Add | Multiply | Minimum | Maximum if promoted.is_bool() => DType::Bool,
        Subtract | FloorDivide | Remainder | Power if promoted.is_bool() => {
            return Err(format!("{} is not defined for two booleans", binary_symbol(op)));
        }
        _ => promoted,
    })
}

/// The type `op` returns on an operand of type `d`.
pub fn unary(op: UnaryOp, d: DType) -> Result<DType, String> {
    use UnaryOp::*;
    Ok(match op {
        Negative if d.is_bool() => return Err("negative is not defined for booleans (use ~)".into()),
        Negative | Absolute => d,
        Sqrt | Exp | Log | Sin | Cos | Tan => float_of(d),
        Floor | Ceil if d.is_float() => d,
        Floor | Ceil => DType::Float64,
        Isnan => DType::Bool,
        Not if d.is_bool() => DType::Bool,
        Not => return Err(format!("~ (logical not) needs a boolean operand, not {d}")),
    })
}

/// The operator's symbol or name, for messages and `explain`.
pub fn binary_symbol(op: BinaryOp) -> &'static str {
    use BinaryOp::*;
    match op {
        Add => "+",
        Subtract => "-",
        Multiply => "*",
        Divide => "/",
        FloorDivide => "//",
        Remainder => "%",
        Power => "**",
        Minimum => "minimum",
        Maximum => "maximum",
        Equal => "==",
        NotEqual => "!=",
        Less => "<",
        LessEqual => "<=",
        Greater => ">",
        GreaterEqual => ">=",
        And => "&",
        Or => "|",
    }
}

pub use crate::io::zarr::{arrow_type, from_arrow};

#[cfg(test)]
mod tests {
    use super::*;
    use DType::*;

    #[test]
    fn promotion_follows_numpy() {
        // np.result_type for these pairs (NumPy 2).
        let cases = [
            (Int8, Uint8, Int16),
            (Int32, Uint32, Int64),
            (Int64, Uint64, Float64),
            (Uint8, Int16, Int16),
            (Float32, Int16, Float32),
            (Float32, Int32, Float64),
            (Float32, Float64, Float64),
            (Bool, Int8, Int8),
            (Uint16, Uint32, Uint32),
        ];
        for (a, b, want) in cases {
            assert_eq!(promote(a, b), want, "{a} with {b}");
            assert_eq!(promote(b, a), want, "{b} with {a}");
        }
    }

    #[test]
    fn python_scalars_are_weak() {
        let int = Operand::Weak(WeakKind::Int);
        let float = Operand::Weak(WeakKind::Float);
        assert_eq!(promote_operands(Operand::Array(Int8), int), Int8);
        assert_eq!(promote_operands(Operand::Array(Float32), float), Float32);
        assert_eq!(promote_operands(Operand::Array(Int32), float), Float64);
        assert_eq!(promote_operands(Operand::Array(Bool), int), Int64);
        assert_eq!(binary(BinaryOp::Divide, Operand::Array(Int32), int), Ok(Float64));
        assert_eq!(binary(BinaryOp::Divide, Operand::Array(Float32), int), Ok(Float32));
        assert!(binary(BinaryOp::And, Operand::Array(Int32), Operand::Array(Bool)).is_err());
    }
}

//! Tensors across the boundary between wasi:nn and ONNX Runtime: copied in and out, or viewed
//! in place in the jail's shared region. Sizes are checked before any copy, so a graph's output
//! cannot make the host allocate past the instance's tensor budget.

use ort::session::{Session, SessionInputValue};
use ort::value::{DynTensor, TensorElementType, ValueType};

use crate::nn::{ElementType, ErrorCode, Tensor};

fn ort_type(ty: ElementType) -> TensorElementType {
    match ty {
        ElementType::F16 => TensorElementType::Float16,
        ElementType::F32 => TensorElementType::Float32,
        ElementType::F64 => TensorElementType::Float64,
        ElementType::BF16 => TensorElementType::Bfloat16,
        ElementType::U8 => TensorElementType::Uint8,
        ElementType::I32 => TensorElementType::Int32,
        ElementType::I64 => TensorElementType::Int64,
    }
}

/// An ONNX Runtime tensor over `len` bytes at `data` (the jail's shared region), without a
/// copy; `None` for the element types that need the copying path ([`to_ort`]).
///
/// # Safety
/// `data` must point to `Tensor::byte_len(dimensions, ty)` readable and writable bytes that
/// outlive the returned value.
pub unsafe fn tensor_view<'a>(
    data: *mut u8,
    ty: ElementType,
    dimensions: &[u32],
) -> Result<Option<SessionInputValue<'a>>, String> {
    use ort::memory::MemoryInfo;
    use ort::value::{Shape, TensorRefMut};
    let shape = Shape::new(dimensions.iter().map(|&d| i64::from(d)));
    let info = MemoryInfo::default();
    let data = data.cast::<std::ffi::c_void>();
    // SAFETY (each arm): the caller guarantees the buffer; `from_raw` reads exactly
    // product(shape) elements of the arm's type.
    let value = unsafe {
        match ty {
            ElementType::F32 => TensorRefMut::<f32>::from_raw(info, data, shape).map(Into::into),
            ElementType::F64 => TensorRefMut::<f64>::from_raw(info, data, shape).map(Into::into),
            ElementType::I32 => TensorRefMut::<i32>::from_raw(info, data, shape).map(Into::into),
            ElementType::I64 => TensorRefMut::<i64>::from_raw(info, data, shape).map(Into::into),
            ElementType::U8 => TensorRefMut::<u8>::from_raw(info, data, shape).map(Into::into),
            ElementType::F16 | ElementType::BF16 => return Ok(None),
        }
    };
    value.map(Some).map_err(|e| e.to_string())
}

/// Copies a validated wasi:nn tensor into an ONNX Runtime tensor of the same element type.
pub fn to_ort(session: &Session, tensor: &Tensor) -> Result<DynTensor, String> {
    let shape: Vec<i64> = tensor.dimensions.iter().map(|&d| i64::from(d)).collect();
    let mut value = DynTensor::new(session.allocator(), ort_type(tensor.ty), shape)
        .map_err(|e| e.to_string())?;
    let destination = value.data_ptr_mut().cast::<u8>();
    if destination.is_null() && !tensor.data.is_empty() {
        return Err("ONNX Runtime gave no buffer for the tensor".into());
    }
    if !tensor.data.is_empty() {
        // SAFETY: `DynTensor::new` allocated a CPU buffer of exactly product(shape) elements of
        // this element type; `Tensor::check` (called on every input) proved that `data` holds
        // exactly that many bytes. Byte copies need no alignment.
        unsafe {
            std::ptr::copy_nonoverlapping(tensor.data.as_ptr(), destination, tensor.data.len());
        }
    }
    Ok(value)
}

/// Copies an ONNX Runtime output into a wasi:nn tensor, if it fits in `budget` bytes (checked
/// before the host allocates anything). Element types wasi:nn cannot name are refused, except
/// booleans, which become `u8` 0/1.
pub fn from_ort(
    value: ort::value::DynValueRef<'_>,
    budget: u64,
) -> Result<Tensor, (ErrorCode, String)> {
    let unsupported = |why: String| (ErrorCode::UnsupportedOperation, why);
    let (ty, shape) = match value.dtype() {
        ValueType::Tensor { ty, shape, .. } => (*ty, shape.clone()),
        other => {
            return Err(unsupported(format!(
                "is a {other}, not a tensor; wasi:nn returns only tensors"
            )));
        }
    };
    let element = match ty {
        TensorElementType::Float16 => ElementType::F16,
        TensorElementType::Float32 => ElementType::F32,
        TensorElementType::Float64 => ElementType::F64,
        TensorElementType::Bfloat16 => ElementType::BF16,
        TensorElementType::Uint8 | TensorElementType::Bool => ElementType::U8,
        TensorElementType::Int32 => ElementType::I32,
        TensorElementType::Int64 => ElementType::I64,
        other => {
            return Err(unsupported(format!(
                "has element type {other:?}, which wasi:nn cannot carry"
            )));
        }
    };
    if shape.len() > crate::nn::MAX_TENSOR_RANK {
        return Err(unsupported(format!(
            "has {} dimensions; at most {} are returned",
            shape.len(),
            crate::nn::MAX_TENSOR_RANK
        )));
    }
    let dimensions = shape
        .iter()
        .map(|&d| {
            u32::try_from(d).map_err(|_| unsupported(format!("has dimension {d}, outside u32")))
        })
        .collect::<Result<Vec<u32>, _>>()?;
    let byte_len = Tensor::byte_len(&dimensions, element)
        .ok_or_else(|| unsupported("is too large to describe".to_string()))?;
    if byte_len as u64 > budget {
        return Err((
            ErrorCode::TooLarge,
            format!(
                "is {byte_len} bytes, past the {budget} bytes left of the tensor budget (limits.tensor-bytes)"
            ),
        ));
    }
    let tensor_ref = value
        .downcast::<ort::value::DynTensorValueType>()
        .map_err(|e| unsupported(e.to_string()))?;
    let source = tensor_ref.data_ptr().cast::<u8>();
    let mut data = vec![0u8; byte_len];
    if byte_len > 0 {
        if source.is_null() {
            return Err(unsupported("has no CPU buffer".into()));
        }
        // SAFETY: ONNX Runtime's output is a CPU tensor of `shape` with elements of `ty`, whose
        // size (1 byte for bool and u8) matches `element`; `byte_len` is exactly its buffer size.
        unsafe { std::ptr::copy_nonoverlapping(source, data.as_mut_ptr(), byte_len) };
    }
    Ok(Tensor {
        dimensions,
        ty: element,
        data,
    })
}

//! Which backend has the fused CUDA kernels (`icl_lab_kernels`), and moving tensors to it.
//! Models stay generic over `B: Backend`: a fused op checks at run time, by `TypeId`, whether
//! `B` is the CUDA backend (`runtime::CudaBackend` or its inner backend) and casts its tensors
//! over; any other backend takes the tensor-op form.

#![cfg_attr(not(feature = "cuda"), allow(unused_imports))] // the TypeId checks are for CUDA

use std::any::{Any, TypeId};

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// Whether `B` has the fused kernels (the CUDA backend, with or without autodiff).
pub fn fused_available<B: Backend>() -> bool {
    #[cfg(feature = "cuda")]
    {
        type Ad = crate::runtime::CudaBackend;
        let id = TypeId::of::<B>();
        if id == TypeId::of::<Ad>() || id == TypeId::of::<<Ad as AutodiffBackend>::InnerBackend>() {
            return true;
        }
    }
    #[cfg(feature = "emulator")]
    {
        type Emu = crate::runtime::EmuBackend;
        let id = TypeId::of::<B>();
        if id == TypeId::of::<Emu>() || id == TypeId::of::<<Emu as AutodiffBackend>::InnerBackend>() {
            return true;
        }
    }
    false
}

/// `a` as a `T` when `A` and `T` are the same type; `a` back otherwise.
pub(crate) fn cast<A: 'static, T: 'static>(a: A) -> Result<T, A> {
    let mut slot = Some(a);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>() {
        Some(t) => Ok(t.take().expect("filled above")),
        None => Err(slot.expect("left alone")),
    }
}

/// `$on::<B, K, ..>(operands, args..)` for each backend `K` that has the fused kernels (the
/// CUDA backend with and without autodiff; with the `emulator` feature the emulator's too),
/// until one takes them: `$on` returns `Ok(y)` when `B` is its `K`, else the operands back.
/// `Err(operands)` when `B` is none of them (every other backend, and every build without
/// `cuda`). Extra generic arguments after `K` (a rank) and extra call arguments pass through.
macro_rules! on_fused_backend {
    ($on:ident::<$b:ty $(, $generic:ident)*>($operands:expr $(, $arg:expr)*)) => {{
        let result = Err($operands);
        #[cfg(feature = "cuda")]
        let result = result
            .or_else(|ops| $on::<$b, crate::runtime::CudaBackend $(, $generic)*>(ops $(, $arg)*))
            .or_else(|ops| $on::<$b, <crate::runtime::CudaBackend as burn::tensor::backend::AutodiffBackend>::InnerBackend $(, $generic)*>(ops $(, $arg)*));
        #[cfg(feature = "emulator")]
        let result = result
            .or_else(|ops| $on::<$b, crate::runtime::EmuBackend $(, $generic)*>(ops $(, $arg)*))
            .or_else(|ops| $on::<$b, <crate::runtime::EmuBackend as burn::tensor::backend::AutodiffBackend>::InnerBackend $(, $generic)*>(ops $(, $arg)*));
        result
    }};
}
pub(crate) use on_fused_backend;

/// `$on::<B, I, ..>(operands, args..)` for each inner backend `I` whose `Autodiff<I>` trains
/// here (NdArray in f32 and f64; the CUDA backend's inner one; with the `emulator` feature the
/// emulator's), until one takes them: `$on` returns `Ok(y)` when `B` is `Autodiff<I>`, else
/// the operands back. `Err(operands)` when `B` is none of them (a backend without autodiff,
/// say). Extra generic arguments after `I` and extra call arguments pass through.
macro_rules! on_autodiff_backend {
    ($on:ident::<$b:ty $(, $generic:ident)*>($operands:expr $(, $arg:expr)*)) => {{
        let result = $on::<$b, burn::backend::NdArray<f32> $(, $generic)*>($operands $(, $arg)*)
            .or_else(|ops| $on::<$b, burn::backend::NdArray<f64> $(, $generic)*>(ops $(, $arg)*));
        #[cfg(feature = "cuda")]
        let result = result.or_else(|ops| $on::<$b, <crate::runtime::CudaBackend as burn::tensor::backend::AutodiffBackend>::InnerBackend $(, $generic)*>(ops $(, $arg)*));
        #[cfg(feature = "emulator")]
        let result = result.or_else(|ops| $on::<$b, <crate::runtime::EmuBackend as burn::tensor::backend::AutodiffBackend>::InnerBackend $(, $generic)*>(ops $(, $arg)*));
        result
    }};
}
pub(crate) use on_autodiff_backend;

// All-zero bytes are no valid wide pointer to a trait object (its vtable pointer would be null), and std
// guarantees the all-zero `None` of `Option<&T>`, `Option<&mut T>`, `Option<NonNull<T>>` and
// `Option<Box<T>>` only for `T: Sized`.
use core::ptr::NonNull;
use pinit::Zeroable;

fn needs_zeroable<T: Zeroable>() {}

fn main() {
    needs_zeroable::<*const dyn Fn()>();
    needs_zeroable::<*mut dyn Fn()>();
    needs_zeroable::<Option<&'static dyn Fn()>>();
    needs_zeroable::<Option<&'static mut dyn Fn()>>();
    needs_zeroable::<Option<NonNull<dyn Fn()>>>();
    needs_zeroable::<Option<Box<dyn Fn()>>>();
}

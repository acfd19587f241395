//! What the two watch-fed caches (`sources`, `copies`) share: the buffer that collects a
//! (re-)list until it is complete (their keys are `crate::plan::key::id`s).
use std::sync::Mutex;

/// The list in progress between the watcher's `Init` and `InitDone`, swapped in whole at the end
/// (as kube-runtime's reflector does), so readers never see half a list.
pub struct Relist<T>(Mutex<Option<T>>);

impl<T: Default> Default for Relist<T> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<T: Default> Relist<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        // Poisoning only means a writer panicked mid-insert; the buffer is replaced at the next
        // `Init` anyway.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Init`: a new list starts.
    pub fn begin(&self) {
        *self.lock() = Some(T::default());
    }

    /// `InitApply`: adds to the list in progress.
    pub fn add(&self, f: impl FnOnce(&mut T)) {
        f(self.lock().get_or_insert_with(T::default))
    }

    /// `InitDone`: the complete list.
    pub fn finish(&self) -> T {
        self.lock().take().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_whole_or_nothing() {
        let r = Relist::<Vec<u8>>::default();
        r.begin();
        r.add(|v| v.push(1));
        r.add(|v| v.push(2));
        assert_eq!(r.finish(), vec![1, 2]);
        assert!(r.finish().is_empty(), "taken once");
        r.add(|v| v.push(3)); // an InitApply without Init still lands in a fresh list
        r.begin();
        assert!(r.finish().is_empty(), "Init starts over");
    }
}

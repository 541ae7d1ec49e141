// Values that are ready now on the embedded path and later on the distributed one. The in-process index, cache
// and lockouts answer synchronously; Redis answers with a promise. Awaiting a plain value still costs a microtask
// and a suspension of the async function, so the hot path branches on isPromise and awaits only real promises.

export type MaybePromise<T> = T | Promise<T>;

/** True for a promise (a thenable of ours: the ports return native promises). */
export function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return v instanceof Promise;
}

/** `f(v)` now when `v` is ready, else when it settles: no microtask on the synchronous path. */
export function settle<T, R>(v: MaybePromise<T>, f: (t: T) => MaybePromise<R>): MaybePromise<R> {
  return v instanceof Promise ? v.then(f) : f(v);
}

/** Marks a promise that is awaited later (or not at all, when an earlier answer goes out) as handled. */
export function later<T>(v: MaybePromise<T>): MaybePromise<T> {
  if (v instanceof Promise) v.catch(() => {});
  return v;
}

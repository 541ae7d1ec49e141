// Ports: what the services need from storage, and nothing about how it is kept, one module per domain under
// ports/. Adapters live beside them (sqlite/, postgres/, memory/, redis/); services import ports only. This file
// gathers them so an import names one place.

export * from './ports/cache.ts';
export * from './ports/identity.ts';
export * from './ports/location.ts';
export * from './ports/phone.ts';
export * from './ports/presence.ts';
export * from './ports/bridge.ts';

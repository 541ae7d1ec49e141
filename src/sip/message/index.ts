// The SIP message layer: parse, inspect, build and serialize messages. Knows nothing of transports.
export * from './header-names.ts';
export * from './grammar.ts';
export * from './uri.ts';
export * from './name-addr.ts';
export * from './via.ts';
export * from './message.ts';
export * from './parse.ts';
export * from './serialize.ts';
export * from './response.ts';
export * from './status.ts';
export * from './validate.ts';
export * from './detach.ts';

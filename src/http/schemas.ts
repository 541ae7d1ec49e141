// Shared JSON schemas for the HTTP edge.

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

export const accountSchema = {
  type: 'object',
  required: ['id', 'username', 'realm', 'aor', 'roles', 'disabled', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    username: { type: 'string' },
    realm: { type: 'string' },
    aor: { type: 'string' },
    roles: { type: 'array', items: { type: 'string' } },
    disabled: { type: 'boolean' },
    hasPassword: { type: 'boolean' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;

/** A phone account's devices (GET /v1/devices for the device itself, GET /users/{id}/devices for admins). */
export const deviceListSchema = {
  type: 'object',
  properties: {
    devices: {
      type: 'array',
      items: { type: 'object', properties: { id: { type: 'integer' }, name: { type: ['string', 'null'] }, created: { type: 'integer' }, lastSeen: { type: 'integer' } } },
    },
  },
} as const;

// Sources for the parity suite, in the reference's `SessionSource.to_dict()` shape (snake_case
// keys, chat types as strings): the Python client takes them as they are; the Node tests pass
// them converted to camelCase (and once as they are).

/**
 * @typedef {{name: string, source: Record<string, unknown>, redact?: boolean, entry?: Record<string, string>,
 *   platforms?: {connected_platforms: string[], home_channels: Record<string, string>[]}}} Case
 */

/** @type {Case[]} */
export const CASES = [
  {
    name: 'telegram dm',
    source: { platform: 'telegram', chat_id: '12345', chat_type: 'dm', user_id: '12345', user_name: 'Alice' },
  },
  {
    name: 'telegram dm without a name, redacted',
    source: { platform: 'telegram', chat_id: '777001', chat_type: 'dm', user_id: '777001' },
    redact: true,
    platforms: {
      connected_platforms: ['telegram', 'discord', 'local'],
      home_channels: [
        { platform: 'telegram', chat_id: '-100555000', name: 'Ops' },
        { platform: 'discord', chat_id: '4242', thread_id: '77' },
      ],
    },
  },
  {
    name: 'telegram group forum topic, with an entry',
    source: {
      platform: 'telegram',
      chat_id: '-1001234567890',
      chat_type: 'group',
      chat_name: 'Team',
      user_id: '42',
      user_name: 'Bob',
      thread_id: '7',
    },
    entry: {
      session_key: 'agent:main:telegram:group:-1001234567890:7',
      session_id: '20250101_120000_abcdef12',
      created_at: '2025-01-01T12:00:00.000Z',
      updated_at: '2025-01-01T12:30:00.250Z',
    },
  },
  {
    name: 'discord thread',
    source: {
      platform: 'discord',
      chat_id: '1188000000000000099',
      chat_type: 'thread',
      chat_name: 'design-review',
      user_id: '5550001',
      user_name: 'Dana',
      thread_id: '1188000000000000099',
      guild_id: '1100000000000000001',
      parent_chat_id: '1100000000000000042',
      message_id: '1188000000000000500',
    },
  },
  {
    name: 'discord channel with a topic',
    source: {
      platform: 'discord',
      chat_id: '1234567890',
      chat_type: 'channel',
      chat_name: 'general',
      chat_topic: 'Talk about anything',
      user_id: '55',
      user_name: 'Dave',
      guild_id: '999',
      is_bot: false,
    },
  },
  {
    name: 'whatsapp dm, redacted',
    source: {
      platform: 'whatsapp',
      chat_id: '4915112345678@s.whatsapp.net',
      chat_type: 'dm',
      user_id: '4915112345678@s.whatsapp.net',
    },
    redact: true,
  },
  {
    name: 'whatsapp group, not redacted',
    source: {
      platform: 'whatsapp',
      chat_id: '120363041234567890@g.us',
      chat_type: 'group',
      chat_name: 'Family',
      user_id: '4915187654321@s.whatsapp.net',
      user_name: 'Carol',
    },
  },
  {
    name: 'slack thread in a channel, redaction asked (slack is not PII safe)',
    source: {
      platform: 'slack',
      chat_id: 'C024BE91L',
      chat_type: 'channel',
      chat_name: 'eng',
      thread_id: '1700000000.000100',
      user_id: 'U0G9QF9C6',
      user_name: 'Eve',
      guild_id: 'T0001',
    },
    redact: true,
    platforms: {
      connected_platforms: ['slack', 'telegram'],
      home_channels: [{ platform: 'slack', chat_id: 'C0HOME', name: 'home', scope_id: 'T0001' }],
    },
  },
  {
    name: 'local cli (no chat type: dm)',
    source: { platform: 'local', chat_id: 'cli' },
  },
  {
    name: 'signal group with alternative ids, redacted',
    source: {
      platform: 'signal',
      chat_id: 'group.aGVsbG8=',
      chat_type: 'group',
      chat_name: 'Friends',
      user_id: '+4915100000000',
      user_id_alt: '3f1c8a3e-1111-4a4a-9999-0123456789ab',
      chat_id_alt: 'internal-group-1',
    },
    redact: true,
  },
  {
    name: 'platform spelled with spaces and capitals',
    source: { platform: '  Telegram', chat_id: '99', chat_type: 'dm', user_id: '99', user_name: '' },
  },
];

/**
 * A source with camelCase keys, as a Node gateway writes it.
 * @param {Record<string, unknown>} source
 */
export function camelSource(source) {
  return Object.fromEntries(
    Object.entries(source).map(([key, value]) => [key.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), value]),
  );
}

/**
 * Run-time platforms with camelCase keys.
 * @param {Case['platforms']} platforms
 * @returns {any}
 */
export function camelPlatforms(platforms) {
  if (!platforms) return null;
  return {
    connectedPlatforms: platforms.connected_platforms,
    homeChannels: platforms.home_channels.map(camelSource),
  };
}

/**
 * @param {Record<string, string> | undefined} entry
 */
export function camelEntry(entry) {
  if (!entry) return null;
  return {
    sessionKey: entry.session_key,
    sessionId: entry.session_id,
    createdAt: new Date(entry.created_at),
    updatedAt: new Date(entry.updated_at),
  };
}

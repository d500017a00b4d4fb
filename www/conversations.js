// The conversations, kept in this browser's IndexedDB as they are made (`www/db.js`): each one's record and
// its turns (prompt, how it was read, settings and seed, the model's sha256, the token grid, the PNG). A reload,
// a crash or an app update brings them back; nothing leaves the browser. No DOM here.

import { CONVERSATIONS, TURNS, transact } from './db.js';

/** A conversation's turns, `[id, seq]` from `[id, 0]` on. */
const turnsOf = (id) => IDBKeyRange.bound([id, 0], [id, Infinity]);

/** A new conversation's record (stored with its first turn). */
export function newConversation() {
  const now = Date.now();
  return { id: crypto.randomUUID(), title: '', created: now, updated: now, settings: null };
}

/** Every stored conversation, the most recently changed first. */
export async function listConversations() {
  const all = await transact([CONVERSATIONS], 'readonly', (s) => s[CONVERSATIONS].getAll());
  return all.sort((a, b) => b.updated - a.updated);
}

/** A conversation's turns in order. */
export function loadTurns(id) {
  return transact([TURNS], 'readonly', (s) => s[TURNS].getAll(turnsOf(id)));
}

/**
 * Stores `turn` (`{conversation, seq, …}`) and the conversation's record (`conversation`, its title the first
 * prompt and `updated` now) in one transaction: both or neither.
 */
export function saveTurn(conversation, turn) {
  conversation.updated = Date.now();
  if (!conversation.title) conversation.title = turn.prompt;
  return transact([CONVERSATIONS, TURNS], 'readwrite', (s) => {
    s[CONVERSATIONS].put(conversation);
    s[TURNS].put(turn);
  });
}

/** Stores the conversation's record alone (its settings changed). */
export function saveConversation(conversation) {
  return transact([CONVERSATIONS], 'readwrite', (s) => s[CONVERSATIONS].put(conversation));
}

/** Deletes a conversation and its turns. */
export function deleteConversation(id) {
  return transact([CONVERSATIONS, TURNS], 'readwrite', (s) => {
    s[CONVERSATIONS].delete(id);
    s[TURNS].delete(turnsOf(id));
  });
}



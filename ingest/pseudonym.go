package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"hash"
	"sync"
)

// Pseudonymizer replaces personal data (citizen ids, names, phone numbers) by
// keyed pseudonyms: HMAC-SHA256 under a secret key, so the same person gets
// the same pseudonym (analysts can count repeat applicants) but the clear
// value cannot be recovered or guessed by hashing candidates without the key
// (Decree 13/2023/NĐ-CP).
type Pseudonymizer struct {
	pool sync.Pool
}

// PseudonymPrefix marks a pseudonymized value.
const PseudonymPrefix = "p1:"

// NewPseudonymizer builds a pseudonymizer; the key must have ≥ 16 bytes.
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	if len(key) < 16 {
		return nil, errors.New("pseudonym key must be at least 16 bytes")
	}
	k := append([]byte(nil), key...)
	p := &Pseudonymizer{}
	p.pool.New = func() any { return hmac.New(sha256.New, k) }
	return p, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Pseudonym of a clear value: "p1:" and 26 base32 characters (128 bits).
func (p *Pseudonymizer) Pseudonym(clear string) string {
	h := p.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(clear))
	var sum [sha256.Size]byte
	out := h.Sum(sum[:0])
	p.pool.Put(h)
	return PseudonymPrefix + b32.EncodeToString(out[:16])
}

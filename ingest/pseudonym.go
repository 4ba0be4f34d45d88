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

// pseudoState is one HMAC with buffers of its own, so that computing a
// pseudonym allocates only the result.
type pseudoState struct {
	h   hash.Hash
	in  []byte
	sum [sha256.Size]byte
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
	p.pool.New = func() any { return &pseudoState{h: hmac.New(sha256.New, k)} }
	return p, nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Pseudonym of a clear value: "p1:" and 26 base32 characters (128 bits).
func (p *Pseudonymizer) Pseudonym(value string) string {
	st := p.pool.Get().(*pseudoState)
	st.h.Reset()
	st.in = append(st.in[:0], value...)
	st.h.Write(st.in)
	clear(st.in) // keep no personal data around
	out := st.h.Sum(st.sum[:0])
	var buf [len(PseudonymPrefix) + 26]byte
	copy(buf[:], PseudonymPrefix)
	b32.Encode(buf[len(PseudonymPrefix):], out[:16])
	p.pool.Put(st)
	return string(buf[:])
}

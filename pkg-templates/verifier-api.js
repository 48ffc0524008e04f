// The evidence verifier functions of @animus/datapilot, shared by the three entries (the build
// appends the module-format trailer). They run in the verifier wasm module (dist/verifier_bg.wasm),
// which is loaded on the first verification only, so code that never verifies never downloads
// it. `load(input)` loads it (how depends on the entry) and resolves to its exports.

function makeVerifierApi(load, DataPilot) {
  let pending;

  /** Loads the verifier module once (later calls share the promise; a failed load is retried). */
  function loadVerifier(input) {
    if (pending === undefined) {
      pending = Promise.resolve(input)
        .then(load)
        .catch((e) => {
          pending = undefined;
          throw e;
        });
    }
    return pending;
  }

  async function verifyEvidenceBundle(bytes, options) {
    return (await loadVerifier()).verifyEvidenceBundle(bytes, options);
  }

  async function verifyCheckpoint(note, trustedKeys, policy) {
    return (await loadVerifier()).verifyCheckpoint(note, trustedKeys, policy);
  }

  /**
   * `DataPilot#verifyEvidenceBundle(bytes, { trustedKeys, lastCheckpoint, witnesses, signal,
   * ... })`: the verifier module orchestrates (verify, find the sizes, fetch the proofs and, for
   * a witness policy, the server's cosigned checkpoint, verify with them); proofs and checkpoint
   * come from this client's getConsistencyProof and getCheckpoint with the call's options.
   */
  async function verifyEvidenceBundleOnline(bytes, options) {
    const signal = options?.signal;
    signal?.throwIfAborted();
    const verifier = await loadVerifier();
    signal?.throwIfAborted();
    return verifier.verifyEvidenceBundleOnline(
      bytes,
      options,
      (from, to) => this.getConsistencyProof(from, { ...options, to }).then((p) => p.hashes),
      () => this.getCheckpoint(options),
    );
  }

  // A method like the generated ones (non-enumerable), on the class every client shares
  // (withToken and RunHandle#client create clients without calling the constructor).
  Object.defineProperty(DataPilot.prototype, 'verifyEvidenceBundle', {
    value: verifyEvidenceBundleOnline,
    writable: true,
    configurable: true,
  });

  return { loadVerifier, verifyEvidenceBundle, verifyCheckpoint };
}

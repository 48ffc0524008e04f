declare module 'GLUE' {
  interface DataPilot {
    /**
     * Verifies a bundle like the offline `verifyEvidenceBundle`, and with `lastCheckpoint`
     * fetches the consistency proof from it to the bundle's checkpoint (`getConsistencyProof`,
     * with this call's `signal`, `timeoutMs` and `deadlineMs`): the `consistency` check, for
     * rollback and fork detection. With `witnesses`, fetches the server's current checkpoint
     * (carrying the cosignatures it collected; or takes `witnessedCheckpoint`) and the proof
     * from the bundle's size to it: the `witnessed` check. Resolves to the report; a bad bundle does not reject: read
     * `report.ok`. The first verification loads the verifier module.
     */
    verifyEvidenceBundle(bytes: Uint8Array, options: OnlineVerifyOptions): Promise<VerificationReport>;
  }
}

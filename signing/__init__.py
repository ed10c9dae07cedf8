"""XML digital signatures (enveloped XMLDSig over whole documents) and the Axis test PKI."""

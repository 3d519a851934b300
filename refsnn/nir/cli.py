"""The ``refsnn export-nir`` command (parser in refsnn/cli/main.py) and the install line of
the ``nir`` extra (``.nir`` files are read by :func:`refsnn.interop.load.load`)."""

from __future__ import annotations

from refsnn.errors import OptionError


def require_nir():
    """Import ``nir`` or refuse with the install line."""
    try:
        import nir
    except ImportError:
        raise OptionError("NIR files need the nir package: pip install 'refsnn[nir]'") from None
    return nir


def cmd_export_nir(args) -> int:
    """Write a converted IF network as a NIR graph."""
    from refsnn.interop.load import file_kind
    from refsnn.nir.writer import export_nir
    from refsnn.sim.network import FORMAT, load_snn

    require_nir()
    if file_kind(args.network) != FORMAT:
        raise OptionError(f"{args.network} is not a converted network: convert it first "
                          "(refsnn convert MODEL --calibration DATA --reset zero -o NET.h5)")
    net = load_snn(args.network)
    export_nir(net, args.output)
    print(f"wrote {args.output}: {len(net.neuron_nodes())} IF layers as NIR IF nodes, "
          f"dt = 1, encoding {net.encoding}, readout = mean of the Output's value")
    return 0

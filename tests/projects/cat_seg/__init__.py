"""projects/CAT-Seg (pixelclip_catseg): CAT-Seg's CLIP key layout, the export, the after-loading check."""

"""Validates kiwi image descriptions as kiwi-ng's XMLDescription.load() does: the RelaxNG schema and the
Schematron rules embedded in it, both through lxml. With --summary, prints what the tests check of each valid
description as JSON.

Usage: python3 validate-kiwi-description.py <schema.rng> [--summary] <description.kiwi>...
Exit status 1 and the findings on stderr when a description is invalid.
"""
import json
import sys

from lxml import etree, isoschematron


def summary(document):
    root = document.getroot()

    def packages(section):
        return {
            "profiles": section.get("profiles"),
            "type": section.get("type"),
            "packages": [p.get("name") for p in section.findall("package")],
            "ignored": [p.get("name") for p in section.findall("ignore")],
        }

    return {
        "schemaversion": root.get("schemaversion"),
        "version": root.findtext("preferences/version"),
        "profiles": [p.get("name") for p in root.findall("profiles/profile")],
        "types": [
            {
                "attributes": dict(t.attrib),
                "bootloader": dict(t.find("bootloader").attrib) if t.find("bootloader") is not None else None,
                "dracut": [dict(d.attrib) for d in t.findall("initrd/dracut")],
            }
            for t in root.findall("preferences/type")
        ],
        "repositories": [
            {**dict(r.attrib), "source": r.find("source").get("path")} for r in root.findall("repository")
        ],
        "packages": [packages(s) for s in root.findall("packages")],
    }


def main(arguments):
    schema_file, rest = arguments[0], arguments[1:]
    want_summary = "--summary" in rest
    descriptions = [a for a in rest if a != "--summary"]
    schema = etree.parse(schema_file)
    relaxng = etree.RelaxNG(schema)
    schematron = isoschematron.Schematron(schema, store_report=True)
    valid = True
    summaries = {}
    for description in descriptions:
        document = etree.parse(description)
        if not relaxng.validate(document):
            valid = False
            for error in relaxng.error_log:
                print(f"{description}:{error.line}: RelaxNG: {error.message}", file=sys.stderr)
        if not schematron.validate(document):
            valid = False
            report = schematron.validation_report
            for failed in report.iter("{http://purl.oclc.org/dsdl/svrl}failed-assert"):
                text = " ".join(failed.findtext("{http://purl.oclc.org/dsdl/svrl}text", "").split())
                print(f"{description}: Schematron: {text} ({failed.get('location')})", file=sys.stderr)
        summaries[description] = summary(document)
    if want_summary and valid:
        print(json.dumps(summaries))
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, NIST80053R5Checks } from 'cdk-nag';
import { SampleStack, sampleStackPropsFromContext } from './sample-stack';

const app = new App();
new SampleStack(app, 'SealedInference', sampleStackPropsFromContext(app));
Validations.of(app).addPlugins(
  new AwsSolutionsChecks(app, { writeSuppressionsToCloudFormation: true }),
  new NIST80053R5Checks(app, { writeSuppressionsToCloudFormation: true }),
);
app.synth();
